"""Reading CSV imports: encodings, header aliases, real line numbers, batches and rejects.

Every importer (members, stores, products, orders) reads its file through `CsvSource`, which
yields Polars frames of at most `settings.import_batch_rows` rows with a `line` column (the
file's own line number of the row, counting blank lines and newlines inside quoted fields)
and hands rows it cannot use to a `RejectsWriter`. The parsing expressions shared by the
importers and the batch API (yes/no, whole numbers, yuan to cents, local times) live here too.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

READ_BLOCK_BYTES = 16 * 1024 * 1024  # bytes read from the file at a time
MAX_RECORD_BYTES = 64 * 1024 * 1024  # bytes one row may take before we call its quote unclosed
SNIFF_BYTES = 64 * 1024  # bytes looked at to guess an encoding
MIXED_CJK_CHARS = 2  # UTF-8 Chinese characters before a bad byte that prove a mixed file
BLANK = " \t\r\n\u3000\xa0\ufeff"
FULL_WIDTH = {chr(ord(c) + 0xFEE0): c for c in "0123456789.,+-"}
NEWLINE, QUOTE = 10, 34  # byte values

YES = ("是", "y", "yes", "1", "true", "t", "同意", "已同意", "on", "✓")
NO = ("否", "n", "no", "0", "false", "f", "不同意", "拒绝", "off", "✗")

# Aliases shared by member and order files; each importer adds its own.
PERSON_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "mobile", "phone_number", "tel", "手机号", "手机", "电话", "手机号码",
              "联系电话", "电话号码", "联系方式"),
    "member_code": ("member_code", "member_id", "member_no", "card_no", "会员编号", "会员卡号",
                    "会员号", "卡号", "会员编码"),
    "store_code": ("store_code", "store", "store_name", "门店", "门店编码", "门店代码", "门店名称",
                   "所属门店", "开卡门店"),
}  # fmt: skip


class ImportFileError(Exception):
    """A file that cannot be read at all: nothing of it is imported."""


@dataclass
class ImportResult:
    """What an import did; `as_dict` is the contract printed by `--json`."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    merged_duplicates: int = 0
    rejected: int = 0
    rejects_file: str | None = None
    warnings: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Returns the six counts and the rejects file path."""
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "merged_duplicates": self.merged_duplicates,
            "rejected": self.rejected,
            "rejects_file": self.rejects_file,
        }


def _header_key(text: str) -> str:
    """Folds a header for matching: no BOM, no unit in brackets, lower case, underscores."""
    key = text.strip(BLANK + '"').lower()
    for bracket in ("(", "（", "["):
        if bracket in key and not key.startswith(bracket):
            key = key.split(bracket, 1)[0]
    return key.strip(BLANK).replace(" ", "_").replace("-", "_")


def read_mapping(path: Path) -> dict[str, str]:
    """Reads a mapping file: a JSON object {"column": "field"} or lines `column=field`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFileError(f"cannot read mapping file '{path}': {error}") from error
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFileError(f"mapping file '{path}' is not valid JSON: {error}") from error
        return {str(column): str(name) for column, name in loaded.items()}
    mapping = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ImportFileError(
                f"mapping file '{path}' line {number}: write 'column=field', not '{line}'"
            )
        column, name = line.split("=", 1)
        mapping[column.strip()] = name.strip()
    return mapping


def match_columns(
    header: list[str], aliases: Mapping[str, tuple[str, ...]], mapping: Mapping[str, str]
) -> dict[str, int]:
    """Returns field -> column index, from the explicit mapping first, then the aliases."""
    fields: dict[str, int] = {}
    positions = {_header_key(name): index for index, name in reversed(list(enumerate(header)))}
    for column, name in mapping.items():
        if name not in aliases:
            known = ", ".join(aliases)
            raise ImportFileError(f"the mapping names field '{name}'; known fields are: {known}")
        if _header_key(column) not in positions:
            raise ImportFileError(
                f"the mapping names column '{column}', which the file does not have"
                f" (its columns: {', '.join(header)})"
            )
        fields[name] = positions[_header_key(column)]
    for name, names in aliases.items():
        if name in fields:
            continue
        for alias in names:
            index = positions.get(_header_key(alias))
            if index is not None and index not in fields.values():
                fields[name] = index
                break
    return fields


def _validate_utf8(path: Path, start: int) -> None:
    """Reads the whole file as UTF-8; a bad byte later on means the file mixes encodings."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with path.open("rb") as source:
        source.seek(start)
        while block := source.read(READ_BLOCK_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                line = lines + block[: error.start].count(b"\n")
                raise ImportFileError(
                    f"line {line} of '{path.name}' is not UTF-8 while the lines before it are:"
                    " the file mixes encodings; save it again as UTF-8 CSV"
                ) from error
            lines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise ImportFileError(f"'{path.name}' ends in the middle of a character") from error


def _transcode(path: Path, encoding: str) -> Path | None:
    """Writes a UTF-8 copy of `path` read as `encoding`, streaming; None when it does not fit."""
    decoder = codecs.getincrementaldecoder(encoding)()
    handle, name = tempfile.mkstemp(prefix="tidings-import-", suffix=".csv")
    try:
        with path.open("rb") as source, os.fdopen(handle, "wb") as target:
            while block := source.read(READ_BLOCK_BYTES):
                target.write(decoder.decode(block).encode("utf-8"))
            target.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError:
        os.unlink(name)
        return None
    return Path(name)


def _guess_encodings(head: bytes) -> list[str]:
    """GB18030 (a superset of GBK) first, then whatever charset-normalizer guesses."""
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    guess = best.encoding if best is not None else None
    chinese = {"gb2312", "gbk", "gb18030", "cp936", "hz"}
    return ["gb18030"] + ([guess] if guess and guess not in chinese else [])


def _refuse_mixed(path: Path, utf8_prefix: bytes) -> None:
    """Chinese text in UTF-8 before the first non-UTF-8 byte means the file mixes encodings.

    Two CJK characters are asked for: a GBK pair may pass for one UTF-8 character by chance.
    """
    decoded = utf8_prefix.decode("utf-8", errors="ignore")
    if sum("\u4e00" <= char <= "\u9fff" for char in decoded) >= MIXED_CJK_CHARS:
        line = utf8_prefix.count(b"\n") + 1
        raise ImportFileError(
            f"line {line} of '{path.name}' is not UTF-8 while the lines before it are:"
            " the file mixes encodings; save it again as UTF-8 CSV"
        )


def open_utf8(path: Path) -> tuple[Path, int, Path | None]:
    """Returns a UTF-8 file to read, the byte offset of its text, and a temporary file to remove."""
    try:
        with path.open("rb") as source:
            head = source.read(SNIFF_BYTES)
    except OSError as error:
        raise ImportFileError(f"cannot open '{path}': {error.strerror}") from error
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(f"'{path.name}' is an Excel workbook; save it as CSV (UTF-8) first")
    if head.startswith(codecs.BOM_UTF8):
        _validate_utf8(path, len(codecs.BOM_UTF8))
        return path, len(codecs.BOM_UTF8), None
    candidates = ["gb18030"]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    elif b"\x00" in head:
        raise ImportFileError(f"'{path.name}' is not a text file; save it as CSV (UTF-8)")
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError as error:
            _refuse_mixed(path, head[: error.start])
            candidates = _guess_encodings(head)
        else:
            _validate_utf8(path, 0)
            return path, 0, None
    for encoding in candidates:
        copy = _transcode(path, encoding)
        if copy is not None:
            return copy, 0, copy
    raise ImportFileError(
        f"cannot read '{path.name}': it is neither UTF-8 nor GBK text; save it as CSV (UTF-8)"
    )


@dataclass
class _Records:
    """Complete CSV records of one block: their bytes and the line each one starts on."""

    data: bytes
    starts: np.ndarray  # byte offset of each record in `data`
    ends: np.ndarray  # byte offset of each record's terminator (or end of data)
    lines: np.ndarray  # 1-based line number of each record's first byte


def _split_records(buffer: bytes, first_line: int, final: bool) -> tuple[_Records, int, int]:
    """Finds record ends (newlines outside quotes); returns the records, bytes used, lines used."""
    array = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(array == NEWLINE)
    quotes = np.flatnonzero(array == QUOTE)
    outside = np.searchsorted(quotes, newlines) % 2 == 0
    ends = newlines[outside]
    used_lines = int(np.searchsorted(newlines, ends[-1]) + 1) if ends.size else 0
    used = int(ends[-1]) + 1 if ends.size else 0
    if final and used < len(buffer) and buffer[used:].strip(BLANK.encode()):
        if quotes.size % 2:
            line = first_line + used_lines
            raise ImportFileError(f"line {line}: a quoted field opened here is never closed")
        ends = np.append(ends, len(buffer))
        used, used_lines = len(buffer), newlines.size
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) if ends.size else ends
    lines = first_line + np.searchsorted(newlines, starts)
    return _Records(buffer[:used], starts, ends, lines), used, used_lines


class CsvSource:
    """One CSV file opened for import: its header, its fields, and its rows in batches."""

    def __init__(
        self,
        path: Path,
        *,
        aliases: Mapping[str, tuple[str, ...]],
        mapping_path: Path | None = None,
    ) -> None:
        self.path = path
        self.text_path, self.offset, self.temporary = open_utf8(path)
        self.size = self.text_path.stat().st_size
        try:
            self.header, self.header_end, self.header_lines = self._read_header()
            mapping = read_mapping(mapping_path) if mapping_path else {}
            self.fields = match_columns(self.header, aliases, mapping)
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> tuple[list[str], int, int]:
        """The first non-blank record; returns its cells, where data starts and lines used."""
        import csv

        with self.text_path.open("rb") as source:
            source.seek(self.offset)
            head = source.read(READ_BLOCK_BYTES)
        records, _, _ = _split_records(head, 1, final=len(head) < READ_BLOCK_BYTES)
        for start, end in zip(records.starts.tolist(), records.ends.tolist(), strict=True):
            cells = next(csv.reader(io.StringIO(head[start:end].decode("utf-8", "replace"))), [])
            if any(cell.strip(BLANK) for cell in cells):
                used = head[: end + 1].count(b"\n")
                return [cell.strip(BLANK) for cell in cells], self.offset + end + 1, used
        raise ImportFileError(f"'{self.path.name}' is empty: it has no header line")

    def require(self, *, all_of: tuple[str, ...] = (), any_of: tuple[str, ...] = ()) -> None:
        """Stops with one clear message when the file lacks a column the import needs."""
        found = ", ".join(self.header)
        missing = [name for name in all_of if name not in self.fields]
        if missing:
            raise ImportFileError(
                f"'{self.path.name}' has no {' / '.join(missing)} column (its columns: {found});"
                " rename the header or name the column with --mapping"
            )
        if any_of and not any(name in self.fields for name in any_of):
            raise ImportFileError(
                f"'{self.path.name}' has no {' or '.join(any_of)} column (its columns: {found});"
                " rename the header or name the column with --mapping"
            )

    @property
    def raw_columns(self) -> list[str]:
        """Names of the file's columns inside a batch frame."""
        return [f"c{index}" for index in range(len(self.header))]

    def canonical(self, raw: pl.DataFrame) -> pl.DataFrame:
        """The batch with only the matched fields, under their field names, plus `line`."""
        return raw.select(
            "line", *(pl.col(f"c{index}").alias(name) for name, index in self.fields.items())
        )

    def batches(self, batch_rows: int, *, progress: bool = False) -> Iterator[pl.DataFrame]:
        """Yields the rows as String columns c0..cN plus `line`, skipping blank lines."""
        with _progress(progress, self.size, self.path.name) as advance:
            for records in self._record_blocks(advance):
                for first in range(0, records.starts.size, batch_rows):
                    last = min(first + batch_rows, records.starts.size) - 1
                    frame = self._parse(records, first, last)
                    if frame.height:
                        yield frame

    def _record_blocks(self, advance: Any) -> Iterator[_Records]:
        line = self.header_lines + 1
        carry = b""
        with self.text_path.open("rb") as source:
            source.seek(self.header_end)
            while True:
                block = source.read(READ_BLOCK_BYTES)
                buffer = carry + block
                records, used, lines = _split_records(buffer, line, final=not block)
                if records.starts.size:
                    yield records
                advance(used)
                carry, line = buffer[used:], line + lines
                if not block:
                    return
                if len(carry) > MAX_RECORD_BYTES:
                    raise ImportFileError(
                        f"line {line}: a quoted field opened here is never closed"
                    )

    def _parse(self, records: _Records, first: int, last: int) -> pl.DataFrame:
        chunk = records.data[int(records.starts[first]) : int(records.ends[last]) + 1]
        schema = dict.fromkeys(self.raw_columns, pl.String)
        frame = pl.read_csv(
            io.BytesIO(chunk),
            has_header=False,
            schema=schema,
            truncate_ragged_lines=True,
            extra_columns="ignore",
            missing_columns="insert",
            empty_string_is_null=True,
        )
        lines = records.lines[first : last + 1]
        if frame.height != lines.size:
            raise ImportFileError(
                f"lines {int(lines[0])}-{int(lines[-1])} could not be split into rows;"
                " look for a stray double quote"
            )
        frame = frame.with_columns(pl.col(pl.String).str.strip_chars(BLANK).replace("", None))
        blank = pl.all_horizontal(pl.col(self.raw_columns).is_null())
        return frame.with_columns(line=pl.Series(lines, dtype=pl.Int64)).filter(~blank)

    def close(self) -> None:
        """Removes the UTF-8 copy of a file that was in another encoding."""
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _progress:
    """A Rich progress bar over the bytes of the file, shown only when asked (a terminal)."""

    def __init__(self, show: bool, total: int, label: str) -> None:
        self.show, self.total, self.label = show, total, label
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return lambda _bytes: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(f"importing {self.label}", total=self.total)
        return lambda used: self.bar.advance(task, used)

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


class RejectsWriter:
    """Writes rejected rows (line, reason, original columns) to a CSV that Excel opens."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = _unique(header)
        self.handle: Any = None
        self.count = 0

    @staticmethod
    def beside(source: Path, chosen: Path | None) -> Path:
        """The rejects path: the one chosen, or `<name>.rejects.csv` beside the input."""
        return chosen or source.with_name(f"{source.stem}.rejects.csv")

    def write(self, raw: pl.DataFrame, problems: pl.DataFrame) -> None:
        """Appends the problems (`line`, `reason`) with the raw columns of their rows."""
        if problems.height == 0:
            return
        columns = [f"c{index}" for index in range(len(self.header))]
        rows = problems.join(raw.select("line", *columns), on="line", how="left").sort("line")
        rows = rows.rename(dict(zip(columns, self.header, strict=True)))
        if self.handle is None:
            self.handle = self.path.open("wb")
            self.handle.write(codecs.BOM_UTF8)
            rows.write_csv(self.handle)
        else:
            rows.write_csv(self.handle, include_header=False)
        self.count += problems.height

    def close(self) -> str | None:
        """Closes the file; removes a stale one from an earlier run when nothing was written."""
        if self.handle is None:
            self.path.unlink(missing_ok=True)
            return None
        self.handle.close()
        return str(self.path)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return [name if name not in ("line", "reason") else f"{name}_in_file" for name in unique]


def text(name: str) -> pl.Expr:
    """A trimmed text column (full-width spaces too); empty text is null."""
    return pl.col(name).str.strip_chars(BLANK).replace("", None)


def yes_no(expr: pl.Expr) -> pl.Expr:
    """是/否, Y/N, 1/0, true/false, 同意 ... as a Boolean; anything else is null."""
    mapping = {**dict.fromkeys(YES, True), **dict.fromkeys(NO, False)}
    folded = expr.str.strip_chars(BLANK).str.to_lowercase()
    return folded.replace_strict(mapping, default=None, return_dtype=pl.Boolean)


def half_width(expr: pl.Expr) -> pl.Expr:
    """Full-width digits and signs typed on a Chinese keyboard ('１２３９．５') as ASCII."""
    return expr.str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))


def whole_number(expr: pl.Expr) -> pl.Expr:
    """'120', '１２０', '1,200' or '120.0' as Int64; anything else is null."""
    folded = half_width(expr).str.replace_all(",", "", literal=True).str.replace(r"\.0+$", "")
    return pl.when(folded.str.contains(r"^[+-]?[0-9]{1,15}$")).then(folded.cast(pl.Int64))


def cents(expr: pl.Expr) -> pl.Expr:
    """An amount in yuan ('12.5', '¥1,299.00', '-3') as exact integer cents; else null."""
    folded = half_width(expr).str.replace_all(r"[¥￥,\s元]", "")
    parts = folded.str.extract_groups(r"^([+-]?)([0-9]{1,13})(?:\.([0-9]*?)0*)?$")
    fraction = parts.struct.field("3").fill_null("")
    whole = parts.struct.field("2").cast(pl.Int64) * 100 + fraction.str.pad_end(2, "0").cast(
        pl.Int64, strict=False
    )
    sign = pl.when(parts.struct.field("1") == "-").then(-1).otherwise(1)
    return pl.when(fraction.str.len_chars() <= 2).then(whole * sign)


def local_time(expr: pl.Expr, timezone: str) -> pl.Expr:
    """A time as UTC: with an offset it is taken as given, without one as local to `timezone`."""
    folded = (
        expr.str.replace_all("/", "-", literal=True)
        .str.replace("T", " ", literal=True)
        .str.replace(r"([0-9])\s*([+-][0-9][0-9]):?([0-9][0-9])$", "$1$2$3")
        .str.replace(r"Z$", "+0000")
    )
    with_offset = pl.coalesce(
        folded.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
        for f in ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
    )
    naive = pl.coalesce(
        folded.str.to_datetime(f, strict=False, time_unit="us")
        for f in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
    )
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return pl.coalesce(with_offset, local.dt.convert_time_zone("UTC"))


def reasons(*checks: pl.Expr) -> pl.Expr:
    """Joins the reasons that apply to a row with '; ' (null when none applies)."""
    return pl.concat_str(list(checks), separator="; ", ignore_nulls=True).replace("", None)
