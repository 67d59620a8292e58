"""What a rule means: every operator, precedence, nulls, money, dates, tags and aggregates."""

from __future__ import annotations

import polars as pl
import pytest

from tidings.segments.rules import RuleError, parse
from tidings.segments.service import evaluate

from .conftest import TODAY, order_lines_frame


def matched(people: pl.DataFrame, rule: str, **saved: str) -> set[int]:
    rows = evaluate(
        rule=rule,
        audience=people,
        order_lines=order_lines_frame(),
        today=TODAY,
        saved={name: parse(text) for name, text in saved.items()},
        timezone="Asia/Shanghai",
    )
    return set(rows["member_id"].to_list())


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("days_since_last_order < 31", {1, 5}),
        ("days_since_last_order <= 31", {1, 4, 5}),
        ("days_since_last_order > 31", {2}),
        ("days_since_last_order >= 31", {2, 4}),
        ("days_since_last_order == 31", {4}),
        # != is "not ==": a member without the value is not equal to it.
        ("days_since_last_order != 31", {1, 2, 3, 5}),
        ("p_alive < 0.5", {2}),
        ("points >= 100", {1, 4}),
        ("orders_90d > -1", {1, 2, 3, 4, 5}),
    ],
)
def test_comparisons(people: pl.DataFrame, rule: str, expected: set[int]) -> None:
    assert matched(people, rule) == expected


def test_text_comparisons_and_substrings(people: pl.DataFrame) -> None:
    assert matched(people, 'city == "上海"') == {1, 4}
    assert matched(people, 'rfm_segment == "At risk"') == {2}
    assert matched(people, 'name contains "小"') == {1}
    assert matched(people, 'name not contains "小"') == {2, 3, 4, 5}
    assert matched(people, 'store_code >= "SH"') == {1, 4}


def test_not_binds_tighter_than_and_which_binds_tighter_than_or(people: pl.DataFrame) -> None:
    assert matched(people, 'tier == "gold" or tier == "silver" and churn_risk') == {1, 2}
    assert matched(people, '(tier == "gold" or tier == "silver") and not churn_risk') == {1}
    assert matched(people, 'not tier == "gold" and city == "上海"') == {4}
    assert matched(people, 'not (tier == "gold" and city == "上海")') == {2, 3, 4, 5}
    assert matched(people, 'not not city == "北京"') == {2, 5}


def test_lists_and_nulls(people: pl.DataFrame) -> None:
    assert matched(people, 'tier in ("gold", "silver")') == {1, 2}
    assert matched(people, 'tier not in ("gold", "silver")') == {3, 4, 5}
    assert matched(people, "tier == null") == {3}
    assert matched(people, "tier != null") == {1, 2, 4, 5}
    assert matched(people, 'city in ("北京", null)') == {2, 3, 5}
    assert matched(people, 'city not in ("北京", null)') == {1, 4}
    assert matched(people, "tier in ()") == set()
    assert matched(people, "best_hour in (8, 9)") == set()


def test_a_member_without_a_profile_has_never_ordered(people: pl.DataFrame) -> None:
    assert matched(people, 'lifecycle_stage == "never"') == {3}
    assert matched(people, "orders_90d == 0 and spend_90d == 0") == {2, 3}
    # The tier imported with a member stands in until a refresh computes one.
    assert matched(people, 'tier == "bronze"') == {4, 5}


def test_true_or_false_fields_stand_alone(people: pl.DataFrame) -> None:
    assert matched(people, "churn_risk") == {2}
    assert matched(people, "not churn_risk") == {1, 3, 4, 5}
    # The latest marketing consent event decides.
    assert matched(people, "consent") == {1, 4}
    assert matched(people, "consent == false") == {2, 3, 5}


def test_tags_merge_manual_and_computed(people: pl.DataFrame) -> None:
    assert matched(people, '"榴莲爱好者" in tags') == {1}
    assert matched(people, '"vip" in tags and "榴莲爱好者" in tags') == {1}
    assert matched(people, '"员工" in tags') == {3}
    assert matched(people, '"员工" not in tags') == {1, 2, 4, 5}


def test_money_is_written_in_yuan(people: pl.DataFrame) -> None:
    assert matched(people, "spend_90d > 199.8") == {1, 4}
    assert matched(people, "spend_90d >= 199.9") == {1, 4}
    assert matched(people, "spend_90d > 199.9") == {1}
    assert matched(people, "spend_90d in (199.90, 50)") == {4, 5}
    # Against a plain number field, money counts in yuan too: 600 > 100 but 0 > 0 is false.
    assert matched(people, "spend_90d > points") == {1, 5}


def test_times_compare_by_their_day_in_the_brands_timezone(people: pl.DataFrame) -> None:
    # Member 4 ordered at 00:30 on 1 January in Shanghai, still 31 December in UTC.
    assert matched(people, "last_order_at >= 2025-01-01") == {1, 4, 5}
    assert matched(people, "last_order_at == 2025-01-01") == {4}
    assert matched(people, "last_order_at < 2025-01-01") == {2}
    assert matched(people, "last_order_at <= 2024-12-31") == {2}
    assert matched(people, "last_order_at > 2025-01-01") == {1, 5}
    assert matched(people, "last_order_at != 2025-01-01") == {1, 2, 3, 5}


def test_date_arithmetic_with_a_frozen_today(people: pl.DataFrame) -> None:
    assert matched(people, "last_order_at >= today - 30d") == {1, 4, 5}
    assert matched(people, "last_order_at >= today - 29d") == {1, 5}
    assert matched(people, "last_order_at == today") == {1}
    assert matched(people, "next_run_out_on <= today + 1w") == {1}
    assert matched(people, "next_run_out_on <= today + 2w") == {1, 4}
    assert matched(people, "today + 1w >= next_run_out_on") == {1}
    assert matched(people, "next_run_out_on - 3d == today") == {1}
    assert matched(people, "birthday <= 1990-05-01 and birthday > 1985-01-30") == {1, 2}
    assert matched(people, "today - 30d == 2025-01-01") == {1, 2, 3, 4, 5}
    assert matched(people, "next_run_out_on > last_order_at + 9d") == {4}


def test_age_is_counted_in_whole_years(people: pl.DataFrame) -> None:
    # Born 1985-01-31: 40 on the frozen today. Born 2000-02-01: still 24.
    assert matched(people, "age == 40") == {2}
    assert matched(people, "age == 24") == {4}
    assert matched(people, "age < 30") == {4}


def test_order_history_aggregates(people: pl.DataFrame) -> None:
    # 30 days: today and the 29 days before (from 2 January); the order of 1 February is later.
    assert matched(people, 'orders_in("水果", 30d) >= 2') == {1}
    assert matched(people, 'orders_in("水果", 31d) == 3') == {1}
    assert matched(people, 'orders_in("水果", 30d) == 0') == {2, 3, 4, 5}
    assert matched(people, 'spend_in("母婴", 90d) > 500') == {2}
    assert matched(people, 'spend_in("母婴", 90d) > 600') == set()
    assert matched(people, "orders_in(30d) >= 1") == {1, 2}
    # Every category: 30 + 10 + 20 yuan for member 1.
    assert matched(people, "spend_in(30d) == 60") == {1}
    assert matched(people, "spend_in(1d) == 40 and orders_in(1d) == 1") == {1}


def test_aggregates_need_the_order_history(people: pl.DataFrame) -> None:
    with pytest.raises(RuleError) as caught:
        evaluate(
            rule='tier == "gold" and orders_in("水果", 30d) > 1',
            audience=people,
            order_lines=None,
            today=TODAY,
            saved={},
        )
    assert caught.value.position == 20
    assert "order history" in caught.value.message


def test_saved_segments_are_referred_to_by_name(people: pl.DataFrame) -> None:
    saved = {
        "shanghai": 'city == "上海"',
        "fruit": 'orders_in("水果", 30d) >= 2',
        "shanghai-fruit": 'in_segment("shanghai") and in_segment("fruit")',
    }
    assert matched(people, 'in_segment("shanghai")', **saved) == {1, 4}
    assert matched(people, 'not in_segment("shanghai") and tier != null', **saved) == {2, 5}
    # Aggregates inside a referenced segment are computed too.
    assert matched(people, 'in_segment("shanghai-fruit")', **saved) == {1}


def test_a_cycle_between_segments_is_an_error(people: pl.DataFrame) -> None:
    saved = {"a": 'in_segment("b")', "b": 'tier == "gold" or in_segment("a")'}
    with pytest.raises(RuleError) as caught:
        matched(people, 'city == "上海" and in_segment("a")', **saved)
    assert caught.value.position == len('city == "上海" and ') + 1
    assert caught.value.message == "segment 'a' refers to itself: a → b → a"


def test_an_unknown_segment_is_named_with_a_suggestion(people: pl.DataFrame) -> None:
    with pytest.raises(RuleError) as caught:
        matched(people, 'in_segment("recent-complainer")', **{"recent-complainers": "churn_risk"})
    assert str(caught.value) == (
        "column 1: unknown segment 'recent-complainer'; did you mean 'recent-complainers'?"
    )


def test_evaluate_returns_whole_audience_rows(people: pl.DataFrame) -> None:
    rows = evaluate(rule='city == "上海"', audience=people, order_lines=None, today=TODAY, saved={})
    assert rows.columns == people.columns
    assert rows["name"].to_list() == ["王小明", "张三"]
