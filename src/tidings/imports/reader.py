"""Reading a CSV file in batches: records split outside quotes, real line numbers, blank lines.

`CsvSource` yields Polars frames of text columns `c0..cN` plus `line`, the file's own line
number of the row (counting blank lines and newlines inside quoted fields).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tidings.imports.columns import match_columns, read_mapping
from tidings.imports.encoding import READ_BLOCK_BYTES, open_utf8
from tidings.imports.errors import ImportFileError
from tidings.imports.parsing import BLANK

MAX_RECORD_BYTES = 64 * 1024 * 1024  # bytes one row may take before we call its quote unclosed
NEWLINE, QUOTE = 10, 34  # byte values
SAMPLE_BYTES = 1024 * 1024  # bytes of data read to estimate a file's rows


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

    def estimated_rows(self) -> int:
        """About how many rows the file holds, from the lines of its first megabyte of data."""
        with self.text_path.open("rb") as source:
            source.seek(self.header_end)
            sample = source.read(SAMPLE_BYTES)
        lines = sample.count(b"\n") + (1 if sample and not sample.endswith(b"\n") else 0)
        if not lines:
            return 0
        return round((self.size - self.header_end) * lines / len(sample))

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
