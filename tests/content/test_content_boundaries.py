"""Checks given the filled values: the literal text once, the values per member, same answers."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.content.length import MAINLAND, STANDARD, measure
from tidings.content.lint import blocking_reason, lint_messages, lint_rules, lint_text
from tidings.content.render import render_filled
from tidings.content.template import (
    AUDIENCE_COLUMNS,
    MessageKind,
    parse_template,
    prepare_template,
)

COLUMNS = (*AUDIENCE_COLUMNS, "word", "extra")


def checked(template_text: str, words: list[str | None], *, kind=MessageKind.MARKETING):
    """Renders `template_text` for one member per word; returns texts, measures and reasons."""
    template = prepare_template(template_text, kind=kind, columns=COLUMNS, brand_name="好邻居")
    audience = pl.DataFrame(
        {"word": words, "extra": words}, schema={"word": pl.String, "extra": pl.String}
    )
    rules = lint_rules(brand_name="好邻居", kind=kind)
    rendered, filled = render_filled(template, audience)
    texts = rendered["text"]
    measured = measure(texts, scheme=rules.scheme, filled=filled)
    reasons = lint_messages(texts, rules=rules, measured=measured, filled=filled)
    return texts, measured, reasons


def test_a_sensitive_word_made_of_literal_text_and_a_value_is_found() -> None:
    _, _, reasons = checked("帮忙刷{word}有奖", ["单", "卡", "*单"])
    assert reasons.to_list() == ["sensitive_word:刷单", None, "sensitive_word:刷单"]


def test_a_sensitive_word_around_a_value_that_normalises_to_nothing_is_found() -> None:
    _, _, reasons = checked("欢迎博{word}彩朋友", ["*", "  !", "友"])
    assert reasons.to_list() == ["sensitive_word:博彩", "sensitive_word:博彩", None]


def test_a_longer_term_through_a_value_beats_the_one_in_the_literal_text() -> None:
    long_template = "刷单说明：" + "好" * 40 + "，帮忙刷单{word}"
    _, _, reasons = checked(long_template, ["返利", "你好"])
    assert reasons.to_list() == ["sensitive_word:刷单返利", "sensitive_word:刷单"]


FILLER = "好" * 30


@pytest.mark.parametrize(
    ("template_text", "word"),
    [
        ("{word}phone免费送" + FILLER, "i"),  # the longest term, one character in the value
        (FILLER + "iphone免费{word}" + FILLER, "送"),
        ("{word}" + FILLER + "{extra}", "iPhone免费送"),
    ],
)
def test_the_longest_term_is_found_however_it_straddles(template_text: str, word: str) -> None:
    _, _, reasons = checked(template_text, [word, "-"])
    assert reasons.to_list() == ["sensitive_word:iphone免费送", None]


def test_a_term_that_starts_in_literal_text_shorter_than_the_longest_term_is_found() -> None:
    unframed = parse_template("iphone免{word}", columns=COLUMNS)
    rendered, filled = render_filled(unframed, pl.DataFrame({"word": ["费送", "费"]}))
    rules = lint_rules(brand_name="好邻居", kind=MessageKind.TRANSACTIONAL)
    reasons = lint_messages(rendered["text"], rules=rules, filled=filled)
    assert reasons.to_list() == ["sensitive_word:iphone免费送", "missing_signature"]


@pytest.mark.parametrize(
    ("template_text", "word", "link"),
    [
        ("{word}.evil 中" + FILLER, "www", "www.evil"),
        (FILLER + "中 shop.evil{word}", ".com", "shop.evil.com"),
        (FILLER + "中 http://{word}/x 中" + FILLER, "evil.cn", "http://evil.cn/x"),
    ],
)
def test_a_link_that_runs_from_a_value_into_literal_text_is_found(
    template_text: str, word: str, link: str
) -> None:
    _, _, reasons = checked(template_text, [word, "中"])
    assert reasons.to_list() == [f"foreign_link:{link}", None]


def test_a_link_made_of_literal_text_and_a_value_is_found() -> None:
    _, _, reasons = checked("详情 www.{word}.com 领取", ["shop", "好店"])
    assert reasons.to_list() == ["foreign_link:www.shop.com", None]
    _, _, reasons = checked("见 t.example.cn/{word} 领取", ["a1", "a.evil.com"])
    assert reasons.to_list() == [None, None]
    _, _, reasons = checked("见 {word}/p 领取", ["t.example.cn", "evil.cn"])
    assert reasons.to_list() == [None, "foreign_link:evil.cn/p"]


def test_a_message_whose_only_non_gsm_character_is_in_a_value_is_ucs2() -> None:
    unsigned = parse_template("Hi {word}", columns=COLUMNS)
    rendered, filled = render_filled(unsigned, pl.DataFrame({"word": ["Ann", "张", "€"]}))
    measured = measure(rendered["text"], filled=filled)
    assert measured["encoding"].to_list() == ["GSM-7", "UCS-2", "GSM-7"]
    assert measured["units"].to_list() == [6, 4, 5]  # '€' takes two septets


def test_values_of_another_length_than_the_texts_are_refused() -> None:
    template = prepare_template("{word}", kind=MessageKind.TRANSACTIONAL, columns=COLUMNS)
    _, filled = render_filled(template, pl.DataFrame({"word": ["a", "b"]}))
    with pytest.raises(ValueError, match="2 rows for 3 texts"):
        measure(pl.Series(["a", "b", "c"]), filled=filled)


fragments = st.sampled_from(
    [
        "你好",
        "刷",
        "单",
        "刷单",
        "刷 单返利",
        "返利",
        "i",
        "phone免费送",
        "iPhone免费",
        "送",
        "www",
        "博",
        "彩",
        "最佳",
        "{name}",
        "www.",
        "example.com",
        ".com",
        "/p",
        "t.example.cn",
        "【好邻居】",
        "拒收请回复R",
        "中" * 40,
        "a" * 60,
        "€",
        "😀",
        " ",
        "*",
    ]
)
pieces = st.one_of(fragments, st.text(max_size=3))
values = st.one_of(st.none(), st.lists(pieces, max_size=3).map("".join))
literals = st.lists(pieces, max_size=3).map(
    lambda parts: "".join(parts).replace("{", "{{").replace("}", "}}")
)
placeholders = st.sampled_from(["{word}", "{extra}", "{word|刷}", "{extra|.cn}"])
templates = st.lists(st.one_of(literals, placeholders), max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    text=templates,
    rows=st.lists(st.tuples(values, values), min_size=1, max_size=6),
    kind=st.sampled_from(list(MessageKind)),
    scheme=st.sampled_from([STANDARD, MAINLAND]),
)
def test_checks_given_the_values_agree_with_checks_of_the_whole_text(
    text: str, rows: list, kind, scheme
) -> None:
    template = prepare_template(text, kind=kind, columns=COLUMNS, brand_name="好邻居")
    audience = pl.DataFrame(rows, schema={"word": pl.String, "extra": pl.String}, orient="row")
    rules = lint_rules(brand_name="好邻居", kind=kind, scheme=scheme)
    rendered, filled = render_filled(template, audience)
    texts = rendered["text"]
    measured = measure(texts, scheme=scheme, filled=filled)
    assert measured.equals(measure(texts, scheme=scheme))
    reasons = lint_messages(texts, rules=rules, measured=measured, filled=filled).to_list()
    expected = [
        None if t is None else blocking_reason(lint_text(t, rules=rules), rules=rules)
        for t in texts.to_list()
    ]
    assert reasons == expected
