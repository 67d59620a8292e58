"""PostgreSQL's binary COPY format, built from a Polars frame a column at a time.

COPY's CSV format makes the server parse every value from text (a timestamp's text costs it
more than storing the row); the binary format hands it each value as it is stored. Every
field is laid out by numpy and each row joined by Arrow's element-wise binary join, never by
a Python loop per row. Types the encoder does not know are left to CSV (`encodable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
TRAILER = b"\xff\xff"  # a field count of -1 ends the data
NULL_FIELD = b"\xff\xff\xff\xff"  # a field of length -1 is NULL
PG_EPOCH_MICROSECONDS = 946_684_800_000_000  # PostgreSQL counts from 2000-01-01, Unix 1970
BLOCK_ROWS = 100_000  # rows encoded (and sent) at a time, to bound memory
TIMESTAMPTZ = "timestamp with time zone"
# The big-endian layout and the Polars type of each fixed-width PostgreSQL type written.
FIXED: dict[str, tuple[str, Any]] = {
    "smallint": (">i2", pl.Int16),
    "integer": (">i4", pl.Int32),
    "bigint": (">i8", pl.Int64),
    TIMESTAMPTZ: (">i8", pl.Int64),
    "boolean": ("u1", pl.UInt8),
}
TEXT = frozenset({"text", "character varying"})


def column_types(cursor: Any, table: str) -> dict[str, str]:
    """The PostgreSQL type of each column of `table` (found on the search path)."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    return {str(name): str(kind) for name, kind in cursor.fetchall()}


def encodable(frame: pl.DataFrame, types: dict[str, str]) -> bool:
    """Whether every column of `frame` goes into its column of `types` in binary."""
    for name, dtype in frame.schema.items():
        kind = types.get(name)
        if dtype == pl.Null:
            ok = kind in TEXT or kind in FIXED
        elif kind in TEXT:
            ok = dtype == pl.String
        elif kind == TIMESTAMPTZ:
            ok = isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
        elif kind == "boolean":
            ok = dtype == pl.Boolean
        else:
            ok = kind in FIXED and (dtype.is_integer() or dtype == pl.Null)
        if not ok:
            return False
    return True


def copy_data(frame: pl.DataFrame, types: dict[str, str]) -> Iterator[bytes]:
    """The binary COPY data of `frame`, a block of rows at a time."""
    yield HEADER
    for start in range(0, frame.height, BLOCK_ROWS):
        yield _rows(frame.slice(start, BLOCK_ROWS), types)
    yield TRAILER


def _rows(frame: pl.DataFrame, types: dict[str, str]) -> bytes:
    count = pa.scalar(np.array(frame.width, dtype=">i2").tobytes(), pa.binary())
    fields = [_field(frame[name], types[name]) for name in frame.columns]
    rows = pc.binary_join_element_wise(count, *fields, b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)
    first, last = offsets[rows.offset], offsets[rows.offset + len(rows)]
    return rows.buffers()[2].to_pybytes()[first:last]


def _field(column: pl.Series, kind: str) -> pa.Array:
    """Each value as a field: its length in 4 bytes, then its bytes (NULL_FIELD if null)."""
    if column.dtype == pl.Null:
        return pa.repeat(pa.scalar(NULL_FIELD, pa.binary()), len(column))
    nulls = column.is_null().to_numpy()
    if kind in TEXT:
        payload = column.to_arrow().cast(pa.binary())
        sizes = column.str.len_bytes().fill_null(0).to_numpy()
        fields = pc.binary_join_element_wise(_fixed(sizes, ">i4"), payload, b"")
    else:
        layout, physical = FIXED[kind]
        if kind == TIMESTAMPTZ:
            column = column.dt.convert_time_zone("UTC").dt.cast_time_unit("us").to_physical()
            column = column - PG_EPOCH_MICROSECONDS
        values = column.fill_null(0).cast(physical, strict=True).to_numpy()
        record = np.empty(len(values), dtype=[("size", ">i4"), ("value", layout)])
        record["size"], record["value"] = np.dtype(layout).itemsize, values
        fields = _as_binary(record.tobytes(), record.dtype.itemsize, len(values))
    if nulls.any():
        fields = pc.if_else(pa.array(nulls), pa.scalar(NULL_FIELD, pa.binary()), fields)
    return fields


def _fixed(values: np.ndarray, layout: str) -> pa.Array:
    """Numbers as big-endian binary values of one width each."""
    packed = np.asarray(values, dtype=layout)
    return _as_binary(packed.tobytes(), packed.dtype.itemsize, len(packed))


def _as_binary(data: bytes, width: int, count: int) -> pa.Array:
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), count, [None, pa.py_buffer(data)]
    )
    return fixed.cast(pa.binary())
