"""What an import reports: the error that stops a whole file, and the counts of a finished one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
