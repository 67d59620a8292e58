"""A phone hashed in bulk by the planner matches the key a suppression was written under."""

from __future__ import annotations

import polars as pl

from tidings.campaigns.sources import phone_hash, phone_hashes


def test_bulk_hashes_are_the_suppression_keys_and_empty_phones_match_nothing() -> None:
    phones = pl.Series(["+8613800138000", "+12025550123", None, ""], dtype=pl.String)
    assert phone_hashes(phones).to_list() == [
        phone_hash("+8613800138000"),
        phone_hash("+12025550123"),
        "",
        "",
    ]
