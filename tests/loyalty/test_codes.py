"""Coupon codes: the check character catches every single typo and every swap of neighbours;
codes derived for a campaign are unique, stable across plans and differ between campaigns."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.loyalty import codes
from tidings.loyalty.codes import ALPHABET, BODY_LENGTH, check_char, is_well_formed

bodies = st.text(alphabet=ALPHABET, min_size=BODY_LENGTH, max_size=BODY_LENGTH)


@given(body=bodies, position=st.integers(0, BODY_LENGTH), shift=st.integers(1, len(ALPHABET) - 1))
def test_one_wrong_character_is_caught(body: str, position: int, shift: int) -> None:
    code = body + check_char(body)
    assert is_well_formed(code)
    wrong = ALPHABET[(ALPHABET.index(code[position]) + shift) % len(ALPHABET)]
    assert not is_well_formed(code[:position] + wrong + code[position + 1 :])


@given(body=bodies, position=st.integers(0, BODY_LENGTH - 1))
def test_two_neighbours_swapped_are_caught(body: str, position: int) -> None:
    code = body + check_char(body)
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
    assert is_well_formed(swapped) == (swapped == code)


def test_codes_of_a_big_batch_are_unique_stable_and_well_formed() -> None:
    members = pl.Series(range(1, 200_001))
    first = codes.member_codes("secret", "campaign:7", members)
    assert first.n_unique() == members.len()
    assert first.str.len_chars().unique().to_list() == [codes.CODE_LENGTH]
    assert all(is_well_formed(code) for code in first.sample(2_000, seed=1))
    assert first.equals(codes.member_codes("secret", "campaign:7", members))
    other = codes.member_codes("secret", "campaign:8", members)
    assert (first == other).sum() == 0
    assert first[41] == codes.keyed_code("secret", "campaign:7", 42)
    assert codes.member_codes("another secret", "campaign:7", members[:1])[0] != first[0]


def test_members_whose_codes_clash_get_distinct_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codes._codes

    def clashing(keys: pl.Series) -> pl.Series:
        # Every first derivation gives one code; re-derivations (salt 1, 2, ...) are real.
        return real(keys.str.replace(r"\|\d+\|0$", "|same|0"))

    monkeypatch.setattr(codes, "_codes", clashing)
    made = codes.member_codes("secret", "campaign:7", pl.Series([5, 3, 9, 1]))
    assert made.n_unique() == 4
    assert made[3] == real(pl.Series(["secret|campaign:7|same|0"]))[0]  # the lowest id keeps it
    assert all(is_well_formed(code) for code in made)


def test_typed_codes_are_normalised() -> None:
    assert codes.normalise(" abcd-efgh 23k ") == "ABCDEFGH23K"
    assert not is_well_formed("ABC")
    assert not is_well_formed("0" * codes.CODE_LENGTH)  # 0 is not in the alphabet
