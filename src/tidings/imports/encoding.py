"""Opening an import file as UTF-8: BOMs, GBK and GB18030, UTF-16, and files that mix encodings."""

from __future__ import annotations

import codecs
import os
import tempfile
from pathlib import Path

import polars as pl

from tidings.imports.errors import ImportFileError

READ_BLOCK_BYTES = 16 * 1024 * 1024  # bytes read from the file at a time
SNIFF_BYTES = 64 * 1024  # bytes looked at to guess an encoding
MIXED_CJK_CHARS = 2  # UTF-8 Chinese characters before a bad byte that prove a mixed file


def _validate_utf8(path: Path, start: int) -> None:
    """Reads the whole file as UTF-8; a bad byte later on means the file mixes encodings.

    Polars checks each block without making Python text of it (a quarter of the time that
    decoding took); a block that fails is decoded here to tell the line. A block's last
    character waits for the next block, where the rest of its bytes may be.
    """
    lines, carried = 1, b""
    with path.open("rb") as source:
        source.seek(start)
        while block := source.read(READ_BLOCK_BYTES):
            block = carried + block
            end = _last_character_start(block)
            _check_utf8(path, block[:end], lines)
            lines += block.count(b"\n", 0, end)
            carried = block[end:]
    try:
        carried.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportFileError(f"'{path.name}' ends in the middle of a character") from error


def _last_character_start(block: bytes) -> int:
    """Where the last character of `block` starts (a UTF-8 character is at most 4 bytes)."""
    for back in range(1, min(4, len(block)) + 1):
        if block[-back] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return len(block) - back
    return len(block)


def _check_utf8(path: Path, data: bytes, lines: int) -> None:
    """Raises the mixed-encodings error, with its line, unless `data` is UTF-8 throughout."""
    try:
        pl.Series([data], dtype=pl.Binary).cast(pl.String)
        return
    except pl.exceptions.PolarsError:
        pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = lines + data[: error.start].count(b"\n")
        raise ImportFileError(
            f"line {line} of '{path.name}' is not UTF-8 while the lines before it are:"
            " the file mixes encodings; save it again as UTF-8 CSV"
        ) from error


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
