"""Reading CSV imports: encodings, header aliases, real line numbers, batches and rejects.

Every importer (members, stores, products, orders) reads its file through `CsvSource`, which
yields Polars frames of at most `settings.import_batch_rows` rows with a `line` column (the
file's own line number of the row, counting blank lines and newlines inside quoted fields)
and hands rows it cannot use to a `RejectsWriter`. The parsing expressions shared by the
importers and the batch API (yes/no, whole numbers, yuan to cents, local times) are in
`parsing`.
"""

from tidings.imports.columns import PERSON_ALIASES, match_columns, read_mapping
from tidings.imports.encoding import open_utf8
from tidings.imports.errors import ImportFileError, ImportResult
from tidings.imports.parsing import (
    BLANK,
    cents,
    half_width,
    local_time,
    reasons,
    text,
    whole_number,
    yes_no,
)
from tidings.imports.reader import CsvSource
from tidings.imports.rejects import RejectsWriter

__all__ = [
    "BLANK",
    "PERSON_ALIASES",
    "CsvSource",
    "ImportFileError",
    "ImportResult",
    "RejectsWriter",
    "cents",
    "half_width",
    "local_time",
    "match_columns",
    "open_utf8",
    "read_mapping",
    "reasons",
    "text",
    "whole_number",
    "yes_no",
]
