"""Columnar copies of the order tables a profile refresh reads, kept beside a SQLite store.

A refresh reads every order and order line: ten million lines cost about 6 s of both cores,
though a day's import adds a few thousand. So the rows a refresh read are kept as an Arrow
file beside the store (`<store>.copies/<table>-<scan>.arrow`, with each row's rowid), and
the next refresh reads from the store only the rows the copy lacks. The folder may be
removed at any time: the next refresh reads the tables whole and saves them again.

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
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tidings.scans import SqliteChildren, TableScan, read_here, read_tables_in_children

log = logging.getLogger(__name__)

ROWID = "_rowid"  # the column a copy keeps each row's rowid in
FORMAT = "1"  # a copy's layout; a copy of another layout is read again


@dataclass(frozen=True)
class _Marks:
    """What the store says about a table: its highest rowid and its in-place changes."""

    store_key: str
    highest: int | None
    first_changed: int | None
    changes: int


@dataclass
class ScanCopy:
    """A scan's rows kept in a copy, and the scan of the rows the copy lacks (`rest`).

    Read `rest` (with the other scans, in children), then `complete` gives every row of the
    scan and saves the copy for the next time. Off a SQLite file, or on a store without the
    marks, `rest` is the scan itself and nothing is kept.
    """

    rest: TableScan
    kept: pl.DataFrame | None = None  # the copy's rows still good, with their rowids
    path: Path | None = None  # where the copy is saved; None: no copy is kept
    marks: _Marks | None = None
    whole: bool = False  # whether `kept` is the saved copy, all of it and up to date

    def complete(self, engine: Engine, read: pl.DataFrame) -> pl.DataFrame:
        """Every row of the scan: the kept ones and `read` (the rows of `rest`), in rowid
        order. Saves them as the copy when they differ from it."""
        if self.path is None or self.marks is None:
            return read
        kept = self.kept
        whole = read if kept is None else pl.concat([kept, read], how="vertical_relaxed")
        if not self.whole or read.height:
            _save(self.path, whole, self.marks, _signature(self.rest))
        if self.marks.first_changed is not None:
            _clear_mark(engine, self.rest.table, self.marks.changes)
        return whole.drop(ROWID)


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
    read = read_tables_in_children(engine, rests, children)
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
    path = Path(f"{Path(database).resolve()}.copies") / f"{scan.table}-{signature[:16]}.arrow"
    saved = _load(path, marks, signature)
    kept = _good_rows(engine, with_rowids, saved, marks)
    if saved is None or kept is None or kept.height == 0 or marks.highest is None:
        return ScanCopy(rest=with_rowids, path=path, marks=marks)
    first = int(kept[ROWID][-1]) + 1
    rest = dataclasses.replace(with_rowids, rowids=(first, max(first, marks.highest + 1)))
    whole = kept.height == saved[0].height and saved[1] == marks.changes
    return ScanCopy(rest=rest, kept=kept, path=path, marks=marks, whole=whole)


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
    described = repr((FORMAT, scan.table, scan.columns, scan.where, scan.schema, scan.categorical))
    return hashlib.sha256(described.encode()).hexdigest()


def _load(path: Path, marks: _Marks, signature: str) -> tuple[pl.DataFrame, int] | None:
    """The copy at `path` with the change count it was read at, if it is of this store and
    of this scan."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        if path.exists():
            log.warning("the copy %s cannot be read (%s); reading the table again", path, error)
        return None
    meta = table.schema.metadata or {}
    if meta.get(b"signature") != signature.encode():
        return None
    if meta.get(b"store_key") != marks.store_key.encode():
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame, int(meta[b"changes"])


def _good_rows(
    engine: Engine, scan: TableScan, copy: tuple[pl.DataFrame, int] | None, marks: _Marks
) -> pl.DataFrame | None:
    """The rows of `copy` the store still holds as they are, or None."""
    if copy is None:
        return None
    frame, changes = copy
    if changes != marks.changes:  # rows were changed in place since the copy was read
        if marks.first_changed is None:  # and the mark was cleared by a newer copy's save
            return None
        frame = frame.filter(pl.col(ROWID) < marks.first_changed)
    if frame.height == 0:
        return frame
    last = int(frame[ROWID][-1])
    if marks.highest is None or last > marks.highest:
        return None  # the store has fewer rows than the copy
    stored = read_here(engine, dataclasses.replace(scan, rowids=(last, last + 1)))
    if not _same_rows(stored, frame.tail(1)):
        return None
    return frame


def _same_rows(one: pl.DataFrame, other: pl.DataFrame) -> bool:
    as_text = pl.col(pl.Categorical).cast(pl.String)
    return one.with_columns(as_text).equals(other.with_columns(as_text))


def _save(path: Path, frame: pl.DataFrame, marks: _Marks, signature: str) -> None:
    """Writes the copy beside the store, in place of the last one (never half of one)."""
    # One dictionary per categorical column: a file holds no other.
    table = frame.to_arrow().unify_dictionaries()
    meta = {"signature": signature, "store_key": marks.store_key, "changes": str(marks.changes)}
    table = table.replace_schema_metadata(meta)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # one per writer
    try:
        path.parent.mkdir(exist_ok=True)
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(partial, path)
    except (OSError, pa.ArrowException) as error:
        log.warning("the copy %s was not saved (%s); the next read reads the table", path, error)
        partial.unlink(missing_ok=True)


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
