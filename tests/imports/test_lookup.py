"""KeyIndex: the value of each key, in bulk, as a join would find it, collisions included."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.imports.lookup import KeyIndex

KEYS = st.lists(st.text(alphabet="ab手机0", max_size=4), unique=True, max_size=30)
ASKED = st.lists(st.one_of(st.none(), st.text(alphabet="ab手机0", max_size=4)), max_size=40)


def _joined(keys: list[str], asked: list[str | None]) -> list[int | None]:
    table = pl.DataFrame({"key": keys, "value": range(len(keys))}, schema_overrides={"key": str})
    frame = pl.DataFrame({"key": asked}, schema={"key": pl.String})
    return frame.join(table, on="key", how="left", maintain_order="left")["value"].to_list()


@settings(max_examples=200, deadline=None)
@given(keys=KEYS, asked=ASKED)
def test_finds_what_a_join_finds(keys: list[str], asked: list[str | None]) -> None:
    index = KeyIndex(pl.Series(keys, dtype=pl.String), pl.Series(range(len(keys)), dtype=pl.Int64))
    assert index.find(pl.Series(asked, dtype=pl.String)).to_list() == _joined(keys, asked)


@settings(max_examples=200, deadline=None)
@given(keys=KEYS, asked=ASKED)
def test_keys_whose_hashes_collide_are_told_apart(keys: list[str], asked: list[str | None]) -> None:
    # A hash that gives most keys the same value: every lookup meets other keys' hashes.
    def crude(values: pl.Series) -> pl.Series:
        return values.str.len_bytes().fill_null(0).cast(pl.UInt64) // 3

    index = KeyIndex(
        pl.Series(keys, dtype=pl.String), pl.Series(range(len(keys)), dtype=pl.Int64), hashed=crude
    )
    assert index.find(pl.Series(asked, dtype=pl.String)).to_list() == _joined(keys, asked)


def test_an_empty_table_finds_nothing() -> None:
    index = KeyIndex(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.Int64))
    assert index.find(pl.Series(["M1", None])).to_list() == [None, None]
