"""Encoding, length, parts and cost at the boundaries the SMS standard and providers draw."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.content.length import (
    GSM_BASIC,
    GSM_EXTENSION,
    MAINLAND,
    STANDARD,
    Encoding,
    UnknownSchemeError,
    measure,
    measure_text,
    scheme_named,
    split_parts,
    units_of,
)


def test_seventy_chinese_characters_fit_one_part_and_seventy_one_take_two() -> None:
    assert measure_text("中" * 70, price_per_part_cents=5).segments == 1
    longer = measure_text("中" * 71, price_per_part_cents=5)
    assert (longer.encoding, longer.units, longer.segments, longer.cost_cents) == (
        Encoding.UCS2,
        71,
        2,
        10,
    )
    assert [len(p) for p in split_parts("中" * 71)] == [67, 4]


def test_160_septets_fit_one_part_and_161_take_two() -> None:
    assert measure_text("a" * 160).encoding is Encoding.GSM7
    assert measure_text("a" * 160).segments == 1
    assert measure_text("a" * 161).segments == 2


def test_an_extension_character_takes_two_septets_and_can_push_past_160() -> None:
    assert units_of("a" * 158 + "€") == 160
    assert measure_text("a" * 158 + "€").segments == 1
    assert measure_text("a" * 159 + "€").units == 161
    assert measure_text("a" * 159 + "€").segments == 2


def test_an_escape_pair_at_the_153rd_septet_moves_whole_to_the_next_part() -> None:
    # 152 septets then '€' (2 septets) would end on septet 154: the pair opens part two.
    text = "a" * 152 + "€" + "b" * 100
    parts = split_parts(text)
    assert parts == ["a" * 152, "€" + "b" * 100]
    assert measure_text(text).units == 254 and measure_text(text).segments == 2


def test_the_no_split_rule_can_add_a_part_that_naive_division_would_not() -> None:
    # 306 septets would be two parts of 153, but the pair at septet 153/154 forces a third.
    text = "a" * 152 + "[" + "a" * 152
    assert units_of(text) == 306
    assert len(split_parts(text)) == 3
    assert measure(pl.Series([text]))["segments"].to_list() == [3]


def test_a_surrogate_pair_at_a_ucs2_part_boundary_is_never_split() -> None:
    text = "中" * 66 + "😀" + "中" * 10
    parts = split_parts(text)
    assert parts[0] == "中" * 66
    assert parts[1].startswith("😀")
    assert measure_text(text).units == 78


def test_an_emoji_forces_ucs2_and_takes_two_units() -> None:
    measured = measure_text("Hi 😀")
    assert (measured.encoding, measured.units) == (Encoding.UCS2, 5)


def test_mainland_counts_every_character_once_including_the_signature() -> None:
    body = "中" * 63
    assert measure_text("【好邻居】" + body[:-2], scheme=MAINLAND).segments == 1
    assert measure_text("【好邻居】" + body[:-2], scheme=MAINLAND).units == 66
    assert measure_text("【好邻居】" + body + "ab", scheme=MAINLAND).units == 70
    assert measure_text("【好邻居】" + body + "abc", scheme=MAINLAND).segments == 2
    assert measure_text("😀" * 70, scheme=MAINLAND).segments == 1
    assert [len(p) for p in split_parts("x" * 135, scheme=MAINLAND)] == [67, 67, 1]


def test_schemes_are_named_and_an_unknown_name_says_which_exist() -> None:
    assert scheme_named("mainland") is MAINLAND
    with pytest.raises(UnknownSchemeError, match="gsm, mainland"):
        scheme_named("cmpp")


def test_bulk_measure_keeps_missing_texts_missing() -> None:
    frame = measure(pl.Series(["ok", None], dtype=pl.String), price_per_part_cents=7)
    assert frame.row(0) == ("GSM-7", 2, 1, 7)
    assert frame.row(1) == (None, None, None, None)


gsm_text = st.text(alphabet=st.sampled_from(GSM_BASIC + GSM_EXTENSION), max_size=500)
mixed_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_BASIC + GSM_EXTENSION),
        st.sampled_from("中文会员😀👍🏻€"),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)
any_text = st.one_of(gsm_text, mixed_text)


@settings(max_examples=300, deadline=None)
@given(text=any_text, scheme=st.sampled_from([STANDARD, MAINLAND]))
def test_any_text_splits_into_parts_that_rejoin_and_each_fit(text: str, scheme) -> None:
    parts = split_parts(text, scheme=scheme)
    measured = measure_text(text, scheme=scheme, price_per_part_cents=3)
    assert "".join(parts) == text
    assert measured.segments == len(parts)
    assert measured.cost_cents == 3 * len(parts)
    limits = scheme.limits(measured.encoding)
    if len(parts) == 1:
        assert measured.units <= limits.single
    for part in parts:
        assert units_of(part, scheme=scheme) <= (limits.multi if len(parts) > 1 else limits.single)
        assert part  # no empty part is ever sent
    if not scheme.per_character and measured.encoding is Encoding.UCS2:
        assert measured.units == len(text.encode("utf-16-le")) // 2


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(any_text, max_size=30), scheme=st.sampled_from([STANDARD, MAINLAND]))
def test_bulk_measure_agrees_with_the_scalar_measure(texts: list[str], scheme) -> None:
    bulk = measure(pl.Series(texts, dtype=pl.String), scheme=scheme, price_per_part_cents=4)
    for text, row in zip(texts, bulk.iter_rows(), strict=True):
        one = measure_text(text, scheme=scheme, price_per_part_cents=4)
        assert row == (str(one.encoding), one.units, one.segments, one.cost_cents)


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.integers(min_value=140, max_value=320),
    doubled=st.sampled_from([*GSM_EXTENSION, "😀", "𠀋"]),
    suffix=st.integers(min_value=0, max_value=160),
)
def test_bulk_measure_agrees_when_a_two_unit_character_sits_near_a_boundary(
    prefix: int, doubled: str, suffix: int
) -> None:
    filler = "a" if doubled in GSM_EXTENSION else "中"
    text = filler * prefix + doubled + filler * suffix
    row = measure(pl.Series([text]), price_per_part_cents=1).row(0)
    assert row[2] == len(split_parts(text))
