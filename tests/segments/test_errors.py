"""A bad rule gets a message a person can act on, with the column where it went wrong."""

from __future__ import annotations

import pytest

from tidings.segments.rules import RuleError, parse


def error_of(text: str) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse(text)
    return caught.value


def test_unknown_field_names_its_column_and_the_likely_field() -> None:
    text = 'city == "上海" and points > 10 and teir == "gold"'
    error = error_of(text)
    assert error.position == text.index("teir") + 1
    assert str(error) == f"column {error.position}: unknown field 'teir'; did you mean 'tier'?"


def test_the_issues_example_reads_as_written() -> None:
    text = 'days_since_last_order <= 90 and  teir == "gold"'
    assert str(error_of(text)) == "column 34: unknown field 'teir'; did you mean 'tier'?"


def test_a_chinese_field_name_points_to_the_field() -> None:
    assert error_of('城市 == "上海"').message == "unknown field '城市'; did you mean 'city'?"


def test_an_unquoted_text_is_told_to_be_quoted() -> None:
    error = error_of("tier == gold")
    assert (error.position, error.message) == (
        9,
        "unknown field 'gold'; to compare with a text, quote it: \"gold\"",
    )


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("tier == 5", 9, 'tier is text; compare it with a quoted value, as in tier == "gold"'),
        (
            'orders_90d >= "3"',
            15,
            "orders_90d is integer; compare it with a number, as in orders_90d >= 3",
        ),
        ("5 < tier", 1, 'tier is text; compare it with a quoted value, as in tier == "gold"'),
        ("last_order_at < 30d", 17, "30d is a duration; use it with a date, as in today - 30d"),
        ("churn_risk > true", 12, "churn_risk is true or false; compare it with == or !="),
        ("p_alive > null", 9, "null means no value; test it with == null or != null"),
        ('tags == "vip"', 1, 'tags is a list; test one of its values with in, as in "x" in tags'),
        (
            'city in ("上海", 3)',
            16,
            'city is text; compare it with a quoted value, as in tier == "gold"',
        ),
        ('"vip" in city', 10, 'city is text, not a list; write city in ("a", "b") or city == "a"'),
        (
            "orders_90d - 3d > 1",
            12,
            "orders_90d is not a date; a duration can only move a date, as in today - 30d",
        ),
        (
            "today - 3 > last_order_at",
            9,
            "only a duration (30d, 12w) can be added to or taken from a date; found 3",
        ),
        ("tier", 1, 'tier is not a condition by itself; compare it, as in tier == "..."'),
    ],
)
def test_type_errors(text: str, position: int, message: str) -> None:
    error = error_of(text)
    assert (error.position, error.message) == (position, message)


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('(tier == "gold" or churn_risk', 1, "this '(' is never closed; add ')'"),
        ('tier == "gold")', 15, "this ')' closes no '('; remove it"),
        ('name contains "王', 15, 'this text is never closed; add " at its end'),
        ("tier = 'gold'", 6, "write == to compare"),
        ('tier == "a" && churn_risk', 13, "write 'and' instead of '&&'"),
        ("last_order_at < 2025-02-30", 17, "2025-02-30 is not a date; write dates as 2025-01-31"),
        (
            "last_order_at < today - 3mo",
            25,
            "'3mo' is not a duration; write days or weeks, as in 30d or 12w"
            " (months as days: 6 months ≈ 180d)",
        ),
        (
            'orders_in("水果") > 1',
            15,
            "orders_in needs a window such as 30d or 12w, as in"
            " orders_in(\"水果\", 30d); found ')'",
        ),
        ('order_in("水果", 30d) > 1', 1, "unknown function 'order_in'; did you mean 'orders_in'?"),
        ('in_segment("x"', 1, "in_segment( is never closed; add ')'"),
        ("", 1, 'the rule is empty; write a condition, as in tier == "gold"'),
        ("tier ==", 8, "the rule ends too early; a value is missing"),
        (
            'tier == "a" churn_risk',
            13,
            "expected 'and', 'or' or the end of the rule but found 'churn_risk'",
        ),
    ],
)
def test_syntax_errors(text: str, position: int, message: str) -> None:
    error = error_of(text)
    assert (error.position, error.message) == (position, message)


def test_chinese_quotes_and_brackets_are_understood() -> None:
    assert parse("tier in （“gold”，“silver”）") == parse('tier in ("gold", "silver")')


def test_keywords_are_read_in_any_case() -> None:
    assert parse('NOT tier == "a" AND city IN ("b")') == parse('not tier == "a" and city in ("b")')
