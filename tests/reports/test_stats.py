"""The A/B and lift statistics give the answers of statsmodels and scipy, cover the truth of
simulated campaigns about 95% of the time, and say their verdict in plain words."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from tidings.reports.stats import StatsInputError, ab_summary, holdout_lift

RUNS = 400  # simulated campaigns per coverage check: coverage is then known to about ±1.1%


def _arms(*rows: tuple[str, int, int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["variant", "recipients", "clicked", "converted"], orient="row"
    )


def _members(rng: np.random.Generator, rates: tuple[float, float], sizes: tuple[int, int]):
    """Treated and holdout members: conversion at the given rates, spend when converted."""
    (treated_rate, holdout_rate), (treated, holdout) = rates, sizes
    is_holdout = np.r_[np.zeros(treated, bool), np.ones(holdout, bool)]
    rate = np.where(is_holdout, holdout_rate, treated_rate)
    converted = (rng.random(treated + holdout) < rate).astype(np.int64)
    spend = rng.gamma(2.0, 6000.0, treated + holdout).astype(np.int64)
    return pl.DataFrame(
        {"holdout": is_holdout, "converted": converted, "revenue_cents": converted * spend}
    )


@pytest.mark.parametrize(
    ("variant", "control"),
    [((80, 5000), (50, 5000)), ((3, 120), (9, 130)), ((0, 400), (4, 380)), ((7, 10), (2, 12))],
)
def test_ab_numbers_match_statsmodels(variant: tuple[int, int], control: tuple[int, int]) -> None:
    (count, size), (base_count, base_size) = variant, control
    arms = _arms(("A", base_size, base_count, base_count), ("B", size, count, count))
    result = ab_summary(arms, control="A")[0]["converted"]

    _, p_value = proportions_ztest([count, base_count], [size, base_size])
    assert result["p_value"] == pytest.approx(p_value, rel=1e-9)
    low, high = proportion_confint(count, size, method="wilson")
    assert (result["rate"]["low"], result["rate"]["high"]) == pytest.approx((low, high))
    low, high = proportion_confint(base_count, base_size, method="wilson")
    assert (result["control_rate"]["low"], result["control_rate"]["high"]) == pytest.approx(
        (low, high)
    )
    low, high = confint_proportions_2indep(count, size, base_count, base_size, method="newcomb")
    difference = result["difference"]
    assert (difference["low"], difference["high"]) == pytest.approx((low, high))
    assert difference["value"] == pytest.approx(count / size - base_count / base_size)


def test_lift_numbers_match_statsmodels_and_scipy() -> None:
    members = _members(np.random.default_rng(3), (0.05, 0.03), (3000, 400))
    lift = holdout_lift(members)
    treated = members.filter(~pl.col("holdout"))
    holdout = members.filter(pl.col("holdout"))
    counts = (
        int(treated["converted"].sum()),
        treated.height,
        int(holdout["converted"].sum()),
        holdout.height,
    )
    low, high = confint_proportions_2indep(*counts, method="newcomb")
    conversion = lift["conversion_difference"]
    assert (conversion["low"], conversion["high"]) == pytest.approx((low, high))
    assert lift["incremental_conversions"]["value"] == pytest.approx(
        conversion["value"] * treated.height
    )

    welch = scipy_stats.ttest_ind(
        treated["revenue_cents"].to_numpy(), holdout["revenue_cents"].to_numpy(), equal_var=False
    )
    interval = welch.confidence_interval(0.95)
    revenue = lift["revenue_difference_cents"]
    assert lift["revenue_p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert (revenue["low"], revenue["high"]) == pytest.approx((interval.low, interval.high))
    assert revenue["value"] == pytest.approx(
        treated["revenue_cents"].mean() - holdout["revenue_cents"].mean()
    )
    assert lift["treated"]["revenue_cents"] == treated["revenue_cents"].sum()
    assert lift["holdout"]["members"] == holdout.height


def test_ab_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(8)
    true_rates, size = (0.04, 0.025), 2000
    covered = 0
    for _ in range(RUNS):
        counts = rng.binomial(size, true_rates)
        arms = _arms(("A", size, 0, int(counts[1])), ("B", size, 0, int(counts[0])))
        difference = ab_summary(arms, control="A")[0]["converted"]["difference"]
        covered += difference["low"] <= true_rates[0] - true_rates[1] <= difference["high"]
    assert 0.92 <= covered / RUNS <= 0.98


def test_lift_intervals_cover_the_true_lift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    rates, sizes = (0.06, 0.04), (1800, 600)
    mean_spend = 2.0 * 6000.0  # the gamma's mean, spent by each converting member
    true_revenue = (rates[0] - rates[1]) * mean_spend
    conversion_covered = revenue_covered = 0
    for _ in range(RUNS):
        lift = holdout_lift(_members(rng, rates, sizes))
        conversion, revenue = lift["conversion_difference"], lift["revenue_difference_cents"]
        conversion_covered += conversion["low"] <= rates[0] - rates[1] <= conversion["high"]
        revenue_covered += revenue["low"] <= true_revenue <= revenue["high"]
    assert 0.92 <= conversion_covered / RUNS <= 0.98
    assert 0.92 <= revenue_covered / RUNS <= 0.98


def test_a_big_difference_is_detected_and_no_difference_rarely_is() -> None:
    rng = np.random.default_rng(21)
    size = 3000
    detected = false_alarms = 0
    for _ in range(RUNS):
        big = rng.binomial(size, (0.05, 0.02))
        none = rng.binomial(size, (0.03, 0.03))
        arms = _arms(("A", size, int(none[1]), int(big[1])), ("B", size, int(none[0]), int(big[0])))
        (result,) = ab_summary(arms, control="A")
        detected += result["winner"]
        false_alarms += result["clicked"]["significant"]
    assert detected / RUNS > 0.97
    assert false_alarms / RUNS < 0.08


def test_verdicts_say_who_wins_in_plain_words() -> None:
    arms = _arms(("A", 5000, 300, 50), ("B", 5000, 240, 75), ("C", 5000, 300, 51))
    by_variant = {row["variant"]: row for row in ab_summary(arms, control="A")}
    b, c = by_variant["B"], by_variant["C"]
    _, orders_p = proportions_ztest([75, 50], [5000, 5000])
    _, clicks_p = proportions_ztest([240, 300], [5000, 5000])
    assert b["winner"] is True
    assert b["converted"]["verdict"] == f"B beats A on orders, p = {orders_p:.2g}"
    assert b["clicked"]["verdict"] == f"B does worse than A on clicks, p = {clicks_p:.1g}"
    assert b["verdict"] == f"{b['converted']['verdict']}; {b['clicked']['verdict']}"
    assert c["winner"] is False
    assert c["verdict"].startswith("not enough data yet: about ")
    assert c["verdict"].endswith(" more recipients per variant needed")


def test_recipients_needed_agree_with_a_power_calculation() -> None:
    arms = _arms(("A", 1000, 0, 20), ("B", 1000, 0, 26))
    result = ab_summary(arms, control="A")[0]["converted"]
    effect = proportion_effectsize(0.026, 0.020)
    per_arm = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8)
    assert result["more_recipients_needed"] + 1000 == pytest.approx(per_arm, rel=0.05)
    more = f"{round((result['more_recipients_needed']) / 100) * 100:,}"
    assert (
        result["verdict"] == f"not enough data yet: about {more} more recipients per variant needed"
    )


def test_no_difference_says_what_could_be_detected() -> None:
    arms = _arms(("A", 800, 16, 16), ("B", 800, 16, 16))
    result = ab_summary(arms, control="A")[0]["converted"]
    assert result["more_recipients_needed"] is None
    assert "with 800 recipients per variant only a difference of" in result["verdict"]
    assert 0 < result["detectable_difference"] < 0.05


def test_nothing_sent_is_not_a_verdict() -> None:
    result = ab_summary(_arms(("A", 0, 0, 0), ("B", 0, 0, 0)), control="A")[0]
    assert result["winner"] is False
    assert result["verdict"] == "not enough data yet: nothing sent to B or A"


def test_an_unknown_control_or_missing_column_is_a_clear_error() -> None:
    with pytest.raises(StatsInputError, match="control variant 'Z' is not among the arms"):
        ab_summary(_arms(("A", 10, 1, 1), ("B", 10, 1, 1)), control="Z")
    with pytest.raises(StatsInputError, match="missing: clicked"):
        ab_summary(
            pl.DataFrame({"variant": ["A"], "recipients": [1], "converted": [0]}), control="A"
        )
    with pytest.raises(StatsInputError, match="missing: revenue_cents"):
        holdout_lift(pl.DataFrame({"holdout": [True], "converted": [0]}))


def test_lift_verdicts() -> None:
    rng = np.random.default_rng(5)
    strong = holdout_lift(_members(rng, (0.08, 0.02), (20000, 2000)))
    extra = strong["incremental_conversions"]
    assert strong["measurable"] is True
    assert strong["verdict"].startswith("the campaign caused about ")
    assert extra["low"] > 0 and extra["value"] == pytest.approx(
        strong["conversion_difference"]["value"] * 20000
    )
    flat = holdout_lift(
        pl.DataFrame(
            {
                "holdout": [False] * 500 + [True] * 60,
                "converted": [1] * 15 + [0] * 485 + [1] * 2 + [0] * 58,
                "revenue_cents": [5000] * 15 + [0] * 485 + [5000] * 2 + [0] * 58,
            }
        )
    )
    assert flat["measurable"] is False
    assert flat["verdict"] == "no measurable lift yet"
    no_holdout = holdout_lift(_members(rng, (0.03, 0.03), (500, 0)))
    assert no_holdout["verdict"] == "no holdout: lift cannot be measured"
    assert no_holdout["conversion_difference"] is None
    assert no_holdout["treated"]["members"] == 500


@pytest.mark.parametrize(("count", "size"), [(0, 3), (0, 1000), (3, 3), (17, 17)])
def test_a_rate_of_none_or_all_has_its_bound_exactly_at_the_edge(count: int, size: int) -> None:
    arms = _arms(("A", size, count, count), ("B", size, count, count))
    rate = ab_summary(arms, control="A")[0]["converted"]["rate"]
    low, high = proportion_confint(count, size, method="wilson")
    assert (rate["low"], rate["high"]) == pytest.approx((low, high))
    assert rate["low"] <= rate["value"] <= rate["high"]
