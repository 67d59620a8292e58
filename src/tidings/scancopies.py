"""Columnar copies of the order tables, kept beside a SQLite store for the big reads.

A profile refresh, and a segment rule over order history, read every order and order line:
ten million lines cost about 6 s of both cores, though a day's import adds a few thousand.
So the rows read are kept as Arrow files beside the store, each row with its rowid, in a
folder per table and scan (`<store>.copies/<table>-<scan>/`), and the next read takes from
the store only the rows the copy lacks. A copy is a list of segments (files of consecutive
rowids) in `manifest.json`: the files the reading children wrote become segments as they
are, and a later read adds a segment of its new rows, so nothing is written twice. A copy of
more than MAX_SEGMENTS files is written again as one. The folder may be removed at any time:
the next read reads the tables whole and keeps them again.

Rows are appended with growing ids. One changed in place (updated or deleted) is marked by
the triggers of migration 0022: each change counts in `changed_rows` and lowers the table's
`first_changed_id`, and a copy keeps only its rows below that id. A saved copy clears the
mark unless something changed meanwhile. A copy is set aside (and the whole table read)
when the store lacks the triggers, when it is another store (its `store_key` differs), when
the store's row at the copy's last rowid is not the copy's (a store put back from a backup
and added to since), or when the scan it was read with has changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tidings.scans import SqliteChildren, TableScan, read_here, read_tables_in_children

log = logging.getLogger(__name__)

ROWID = "_rowid"  # the column a copy keeps each row's rowid in
FORMAT = 2  # a copy's layout; a copy of another layout is read again
MANIFEST = "manifest.json"
MAX_SEGMENTS = 24  # files a copy may grow to before it is written again as one
STALE_SECONDS = 3_600  # a file no manifest lists, this old, is left over from an earlier save


@dataclass(frozen=True)
class _Marks:
    """What the store says about a table: its highest rowid and its in-place changes."""

    store_key: str
    highest: int | None
    first_changed: int | None
    changes: int


@dataclass(frozen=True)
class _Segment:
    """One file of a copy: rows `first` to `last` (rowids), `rows` of them."""

    file: str
    first: int
    last: int
    rows: int


@dataclass
class ScanCopy:
    """A scan's rows kept in a copy, and the scan of the rows the copy lacks (`rest`).

    Read `rest` (with the other scans, in children, leaving the files in `incoming`), then
    `complete` gives every row of the scan and saves the copy for the next time. Off a SQLite
    file, or on a store without the marks, `rest` is the scan itself and nothing is kept.
    """

    rest: TableScan
    folder: Path | None = None  # where the copy is kept; None: no copy is kept
    marks: _Marks | None = None
    segments: list[_Segment] = field(default_factory=list)  # kept whole, as saved
    frames: list[pl.DataFrame] = field(default_factory=list)  # their rows, then a cut one's
    current: bool = False  # whether the saved copy is kept whole and up to date
    incoming: Path | None = None  # where the children leave the files of `rest`

    def complete(self, engine: Engine, read: pl.DataFrame) -> pl.DataFrame:
        """Every row of the scan: the kept ones and `read` (the rows of `rest`), in rowid
        order. Saves the copy when it differs from the saved one."""
        if self.folder is None or self.marks is None:
            return read
        whole = pl.concat([*self.frames, read], how="vertical_relaxed")
        if not self.current or read.height or self.marks.first_changed is not None:
            try:
                self._save(whole, read)
            except OSError as error:
                log.warning("the copy %s was not saved (%s)", self.folder, error)
            else:
                if self.marks.first_changed is not None:
                    _clear_mark(engine, self.rest.table, self.marks.changes)
        if self.incoming is not None:
            shutil.rmtree(self.incoming, ignore_errors=True)
        return whole.drop(ROWID)

    def _save(self, whole: pl.DataFrame, read: pl.DataFrame) -> None:
        """The kept segments, a cut one written anew, and the new rows' files (those the
        children wrote, or one written here) become the copy, listed in a new manifest."""
        assert self.folder is not None and self.marks is not None
        segments = list(self.segments)
        cut = self.frames[len(self.segments) :]  # the part kept of a segment cut short
        written = [_write(self.folder, frame) for frame in cut if frame.height]
        arrived = sorted(self.incoming.glob("*.arrow")) if self.incoming is not None else []
        adopted = (_adopt(self.folder, path) for path in arrived)
        written += [segment for segment in adopted if segment is not None]
        if read.height and not arrived:  # read here rather than by children
            written.append(_write(self.folder, read))
        segments += written
        if len(segments) > MAX_SEGMENTS:
            segments = [_write(self.folder, whole)] if whole.height else []
        manifest = {
            "format": FORMAT,
            "signature": _signature(self.rest),
            "store_key": self.marks.store_key,
            "changes": self.marks.changes,
            "segments": [dataclasses.asdict(segment) for segment in segments],
        }
        partial = self.folder / f"{MANIFEST}.{uuid.uuid4().hex}.partial"  # one per writer
        partial.write_text(json.dumps(manifest))
        os.replace(partial, self.folder / MANIFEST)
        _remove_stale(self.folder, {segment.file for segment in segments})


def read_with_copies(
    engine: Engine,
    scans: Mapping[str, TableScan],
    *,
    copied: Collection[str],
    children: SqliteChildren | None = None,
) -> dict[str, pl.DataFrame]:
    """Reads each scan as `tidings.scans.read_tables_in_children` does, the `copied` ones
    from their copies but for the rows the copies lack (which are read with the rest)."""
    copies = {name: open_copy(engine, scans[name]) for name in copied}
    rests = {name: copies[name].rest if name in copies else scan for name, scan in scans.items()}
    keep = {name: copy.incoming for name, copy in copies.items() if copy.incoming is not None}
    read = read_tables_in_children(engine, rests, children, keep=keep)
    return {
        name: copies[name].complete(engine, frame) if name in copies else frame
        for name, frame in read.items()
    }


def open_copy(engine: Engine, scan: TableScan) -> ScanCopy:
    """The copy of `scan`'s rows kept beside the store, and the scan of what it lacks."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return ScanCopy(rest=scan)
    marks = _marks(engine, scan.table)
    if marks is None:
        return ScanCopy(rest=scan)
    with_rowids = dataclasses.replace(
        scan, columns=f"rowid AS {ROWID}, {scan.columns}", schema={ROWID: pl.Int64, **scan.schema}
    )
    signature = _signature(with_rowids)
    folder = Path(f"{Path(database).resolve()}.copies") / f"{scan.table}-{signature[:16]}"
    copy = ScanCopy(
        rest=with_rowids, folder=folder, marks=marks, incoming=folder / f"in-{uuid.uuid4().hex}"
    )
    saved = _load(folder, marks, signature)
    if saved is None or marks.highest is None:
        return copy
    segments, frames, changes = saved
    if changes != marks.changes:  # rows were changed in place since the copy was read
        if marks.first_changed is None:  # and the mark was cleared by a newer copy's save
            return copy
        segments, frames = _before(segments, frames, marks.first_changed)
    if not frames:  # every segment holds rows, and a cut one keeps at least one
        return copy
    last = int(frames[-1][ROWID][-1])
    if last > marks.highest or not _stored_as_kept(engine, with_rowids, frames[-1].tail(1)):
        return copy
    first = last + 1
    copy.rest = dataclasses.replace(with_rowids, rowids=(first, max(first, marks.highest + 1)))
    copy.segments, copy.frames = segments, frames
    copy.current = changes == marks.changes
    return copy


def _marks(engine: Engine, table: str) -> _Marks | None:
    """The table's marks, or None when the store has no triggers marking its changes."""
    triggers = [f"{table}_updated_marked", f"{table}_deleted_marked"]
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (:u, :d)"),
            {"u": triggers[0], "d": triggers[1]},
        ).scalar_one()
        if found != len(triggers):
            return None
        # One statement: the highest rowid and the marks as of one moment.
        row = connection.execute(
            text(
                f"SELECT store_key, (SELECT MAX(rowid) FROM {table}), first_changed_id, changes"
                " FROM changed_rows WHERE table_name = :table"
            ),
            {"table": table},
        ).one_or_none()
    return None if row is None else _Marks(*row)


def _signature(scan: TableScan) -> str:
    """What a copy must have been read with to serve `scan`."""
    described = repr((scan.table, scan.columns, scan.where, scan.schema, scan.categorical))
    return hashlib.sha256(described.encode()).hexdigest()


def _load(
    folder: Path, marks: _Marks, signature: str
) -> tuple[list[_Segment], list[pl.DataFrame], int] | None:
    """The segments of the copy in `folder`, their rows and the change count they were
    read at, if the copy is of this store and of this scan and every file is whole."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("the copy %s cannot be read (%s); reading the table again", folder, error)
        return None
    expected = {"format": FORMAT, "signature": signature, "store_key": marks.store_key}
    if any(manifest.get(name) != value for name, value in expected.items()):
        return None
    try:
        segments = [_Segment(**entry) for entry in manifest["segments"]]
        frames = [pl.read_ipc(folder / segment.file) for segment in segments]
    except (OSError, KeyError, TypeError, pl.exceptions.PolarsError) as error:
        log.warning("the copy %s cannot be read (%s); reading the table again", folder, error)
        return None
    if any(frame.height != segment.rows for frame, segment in zip(frames, segments, strict=True)):
        log.warning("the copy %s is not whole; reading the table again", folder)
        return None
    return segments, frames, int(manifest["changes"])


def _before(
    segments: list[_Segment], frames: list[pl.DataFrame], rowid: int
) -> tuple[list[_Segment], list[pl.DataFrame]]:
    """The segments wholly before `rowid`, and their frames followed by the rows before it
    of the segment it falls in (if any)."""
    whole = [n for n, segment in enumerate(segments) if segment.last < rowid]
    kept = [frames[n] for n in whole]
    cut = next(
        (n for n, segment in enumerate(segments) if segment.first < rowid <= segment.last), None
    )
    if cut is not None:
        kept.append(frames[cut].filter(pl.col(ROWID) < rowid))
    return [segments[n] for n in whole], kept


def _stored_as_kept(engine: Engine, scan: TableScan, kept: pl.DataFrame) -> bool:
    """Whether the store holds the one row of `kept` as it is."""
    rowid = int(kept[ROWID][0])
    stored = read_here(engine, dataclasses.replace(scan, rowids=(rowid, rowid + 1)))
    as_text = pl.col(pl.Categorical).cast(pl.String)
    return stored.with_columns(as_text).equals(kept.with_columns(as_text))


def _write(folder: Path, frame: pl.DataFrame) -> _Segment:
    """Writes `frame` as a new segment file in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.arrow"
    frame.write_ipc(folder / name)
    return _segment(name, frame)


def _adopt(folder: Path, path: Path) -> _Segment | None:
    """Makes a file a reading child wrote a segment of the copy in `folder`; None for one
    that holds no row (a slice may hold none), which is left to be removed."""
    rowids = pl.read_ipc(path, columns=[ROWID])
    if rowids.height == 0:
        return None
    name = f"{uuid.uuid4().hex}.arrow"
    os.replace(path, folder / name)
    return _segment(name, rowids)


def _segment(name: str, frame: pl.DataFrame) -> _Segment:
    """The segment of the rows of `frame` (at least one), saved as `name`."""
    rowids = frame[ROWID]
    return _Segment(file=name, first=int(rowids[0]), last=int(rowids[-1]), rows=frame.height)


def _remove_stale(folder: Path, listed: set[str]) -> None:
    """Removes files the manifest does not list (a manifest half written included), and
    folders of files read for a copy that was never saved (a read that failed), once older
    than an ongoing save could leave them (another save's new files wait for its manifest)."""
    now = time.time()
    for path in [*folder.glob("*.arrow"), *folder.glob("*.partial"), *folder.glob("in-*")]:
        try:
            if path.name in listed or now - path.stat().st_mtime <= STALE_SECONDS:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        except OSError:
            continue  # removed meanwhile by another save


def _clear_mark(engine: Engine, table: str, changes: int) -> None:
    """Forgets where rows were changed, unless they changed again since `changes`."""
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE changed_rows SET first_changed_id = NULL"
                    " WHERE table_name = :table AND changes = :changes"
                ),
                {"table": table, "changes": changes},
            )
    except OperationalError as error:  # a long write holds the store: clear it next time
        log.info("the mark of %s's changes stays (%s)", table, error)
