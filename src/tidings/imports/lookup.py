"""Finding the values of many text keys in a large table that stays put, batch after batch.

An order import finds each line's member by code or phone among every member in the store,
once per batch. A join builds a hash table of all those keys again for each batch (at a
million members, about 0.8 µs a line in 200,000-line batches); the keys hashed to integers
and sorted once, then searched, cost about a third of that. Keys are compared as text
after the search, so two keys whose hashes collide are told apart: a key whose hash meets
another key's is looked up with a join instead.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

HASH_SEED = 0x7469_6469  # any fixed seed: hashes are only compared within one process


def _hashed(keys: pl.Series) -> pl.Series:
    return keys.hash(HASH_SEED)


class KeyIndex:
    """The value of each key of `keys` (text, unique; nulls are left out), found in bulk."""

    def __init__(
        self,
        keys: pl.Series,
        values: pl.Series,
        *,
        hashed: Callable[[pl.Series], pl.Series] = _hashed,
    ) -> None:
        table = pl.DataFrame({"key": keys, "value": values}).filter(pl.col("key").is_not_null())
        self.hashed = hashed
        self.table = table.with_columns(hashed(table["key"]).alias("hash")).sort("hash")
        self.values_dtype = values.dtype

    def find(self, keys: pl.Series) -> pl.Series:
        """The value of each of `keys`, in their order; null where a key is null or unknown."""
        table, last = self.table, self.table.height - 1
        if last < 0:
            return pl.Series(keys.name, [None] * keys.len(), dtype=self.values_dtype)
        hashes = self.hashed(keys)
        at = table["hash"].search_sorted(hashes).clip(0, last)
        same_hash = table["hash"].gather(at) == hashes
        same_key = table["key"].gather(at) == keys
        found = pl.select(
            pl.when(same_key).then(table["value"].gather(at)).alias(keys.name),
            (same_hash & ~same_key).fill_null(False).alias("clash"),
        )
        values, clash = found.get_column(keys.name), found.get_column("clash")
        if not clash.any():
            return values
        # Another key has this key's hash: the sorted search stopped at one of them.
        rows = clash.arg_true()
        clashing = (
            keys.gather(rows)
            .to_frame("key")
            .join(table, on="key", how="left", maintain_order="left")
        )
        return values.scatter(rows, clashing["value"])
