"""Text and JSON forms of a rule round-trip; the parser never fails but with a RuleError."""

from __future__ import annotations

import contextlib
import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.segments.fields import FIELD_LIST, FieldType
from tidings.segments.jsonform import from_json, to_json
from tidings.segments.rules import RuleError, parse
from tidings.segments.tree import (
    Aggregate,
    And,
    Bool,
    Compare,
    Contains,
    DateValue,
    Duration,
    FieldRef,
    InList,
    InSegment,
    Member,
    Not,
    Null,
    Number,
    Or,
    Shift,
    Text,
    Today,
    to_text,
)

EXAMPLES = [
    'tier in ("gold", "silver") and days_since_last_order <= 90 and "榴莲爱好者" in tags'
    ' and city == "上海"',
    'rfm_segment == "At risk" and not in_segment("recent-complainers")',
    "last_order_at < today - 30d or next_run_out_on - 1w <= today",
    'orders_in("水果", 30d) >= 3 and spend_in("母婴", 90d) > 500.5 or spend_in(12w) < 1',
    '(churn_risk or p_alive < 0.2) and name not contains "测试" and tier not in ("a", null)',
    "a_b == 1" if False else 'not (city == "北京" or city == "上海") and birthday >= 1990-01-01',
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_round_trip_through_text_and_json(text: str) -> None:
    rule = parse(text)
    assert parse(to_text(rule)) == rule
    data = json.loads(json.dumps(to_json(rule)))
    assert from_json(data) == rule


def test_the_json_form_reads_as_the_builder_writes_it() -> None:
    tree = {
        "op": "and",
        "items": [
            {
                "op": "in",
                "left": {"field": "tier"},
                "items": [{"text": "gold"}, {"text": "silver"}],
            },
            {"op": "in", "left": {"text": "榴莲爱好者"}, "right": {"field": "tags"}},
            {
                "op": "<",
                "left": {"field": "last_order_at"},
                "right": {"shift": {"today": True}, "sign": "-", "by": "30d"},
            },
            {
                "op": ">=",
                "left": {"aggregate": "orders_in", "category": "水果", "window": "30d"},
                "right": {"number": 3},
            },
        ],
    }
    assert to_text(from_json(tree)) == (
        'tier in ("gold", "silver") and "榴莲爱好者" in tags and last_order_at < today - 30d'
        ' and orders_in("水果", 30d) >= 3'
    )


def test_a_json_tree_with_a_wrong_field_says_where() -> None:
    tree = {"op": "not", "item": {"op": "==", "left": {"field": "teir"}, "right": {"text": "a"}}}
    with pytest.raises(RuleError) as caught:
        from_json(tree)
    assert str(caught.value) == "tree.item.left: unknown field 'teir'; did you mean 'tier'?"


def test_a_json_tree_with_a_type_error_points_into_its_canonical_text() -> None:
    tree = {"op": "==", "left": {"field": "tier"}, "right": {"number": 5}}
    with pytest.raises(RuleError) as caught:
        from_json(tree)
    assert caught.value.text == "tier == 5"
    assert caught.value.position == 9


# Arbitrary text: the parser answers with a tree or a RuleError, never anything else.

TOKENS = st.sampled_from(
    [
        "tier",
        "tags",
        "city",
        "last_order_at",
        "spend_90d",
        "churn_risk",
        "teir",
        "城市",
        "and",
        "or",
        "not",
        "in",
        "contains",
        "today",
        "null",
        "true",
        "in_segment",
        "orders_in",
        "spend_in",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=",
        "(",
        ")",
        ",",
        "+",
        "-",
        '"gold"',
        "'x",
        '"',
        "“上海”",
        "3",
        "0.5",
        "-2",
        "30d",
        "12w",
        "3m",
        "2025-01-31",
        "2025-13-01",
        "99999999999999999",
        "1e5",
        "&&",
        "!",
        "\\",
        " ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_the_parser_never_crashes_on_any_text(text: str) -> None:
    try:
        parse(text)
    except RuleError as error:
        assert error.position is None or 1 <= error.position <= len(text) + 1


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=25).map(" ".join))
def test_the_parser_never_crashes_on_near_rules(text: str) -> None:
    try:
        rule = parse(text)
    except RuleError as error:
        assert error.position is None or 1 <= error.position <= len(text) + 1
    else:
        assert parse(to_text(rule)) == rule


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: (
            st.lists(inner)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "op",
                        "items",
                        "item",
                        "left",
                        "right",
                        "field",
                        "text",
                        "number",
                        "name",
                        "shift",
                        "by",
                        "sign",
                        "aggregate",
                        "window",
                    ]
                ),
                inner,
            )
        ),
    )
)
def test_from_json_never_crashes_on_any_json(data: object) -> None:
    with contextlib.suppress(RuleError):
        from_json(data)


# Generated trees: printing a tree and parsing it again gives the same tree.


def fields_of(*kinds: FieldType) -> list[str]:
    return [field.name for field in FIELD_LIST if field.type in kinds]


texts = st.text(max_size=12)
numbers = st.integers(-(10**9), 10**9) | st.floats(
    min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False
)
days = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
durations = st.builds(Duration, st.integers(0, 500), st.sampled_from(["d", "w"]))
windows = st.builds(Duration, st.integers(1, 500), st.sampled_from(["d", "w"]))
date_bases = st.one_of(
    st.sampled_from(fields_of(FieldType.DATE, FieldType.DATETIME)).map(FieldRef),
    st.just(Today()),
    days.map(DateValue),
)
date_values = st.one_of(
    date_bases,
    st.builds(Shift, date_bases, st.sampled_from(["+", "-"]), durations),
)
text_fields = st.sampled_from(fields_of(FieldType.TEXT)).map(FieldRef)
number_fields = st.sampled_from(fields_of(FieldType.INTEGER, FieldType.NUMBER, FieldType.MONEY))
aggregates = st.builds(
    Aggregate, st.sampled_from(["orders_in", "spend_in"]), st.none() | texts, windows
)
number_values = number_fields.map(FieldRef) | aggregates


def comparisons() -> st.SearchStrategy[object]:
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        st.builds(Compare, ops, text_fields, texts.map(Text)),
        st.builds(Compare, ops, number_values, numbers.map(Number)),
        st.builds(Compare, ops, number_values, number_values),
        st.builds(Compare, ops, date_values, date_values),
        st.builds(
            Compare,
            st.sampled_from(["==", "!="]),
            st.sampled_from(fields_of(FieldType.BOOL)).map(FieldRef),
            st.booleans().map(Bool),
        ),
        st.builds(Compare, st.sampled_from(["==", "!="]), text_fields, st.just(Null())),
        st.builds(
            InList,
            text_fields,
            st.lists(texts.map(Text) | st.just(Null()), max_size=4).map(tuple),
            st.booleans(),
        ),
        st.builds(
            InList,
            number_fields.map(FieldRef),
            st.lists(numbers.map(Number), max_size=4).map(tuple),
            st.booleans(),
        ),
        st.builds(Member, texts.map(Text), st.just(FieldRef("tags")), st.booleans()),
        st.builds(Contains, text_fields, texts.map(Text), st.booleans()),
        st.builds(InSegment, texts),
    )


rules = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=4).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(rules)
def test_printing_and_parsing_again_gives_the_same_tree(rule: object) -> None:
    text = to_text(rule)  # type: ignore[arg-type]
    assert parse(text) == rule
    assert parse(to_text(parse(text))) == rule


@settings(max_examples=200, deadline=None)
@given(rules)
def test_the_json_form_round_trips(rule: object) -> None:
    data = json.loads(json.dumps(to_json(rule), ensure_ascii=False))  # type: ignore[arg-type]
    assert from_json(data) == rule
