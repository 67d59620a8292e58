"""The rejects file: every row an import could not use, with its line and a reason to act on."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import polars as pl


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
