"""A/B and lift statistics of a campaign: rates with 95% intervals, differences with theirs,
the tests behind them, and a verdict in plain words. Values and Polars frames in, JSON-ready
dicts out; no store.

Rates use Wilson score intervals, differences of rates Newcomb's hybrid score interval (built
from the two Wilson intervals; it keeps its coverage near 95% for small rates, where the
textbook Wald interval does not), the A/B test is the pooled two-proportion z-test, and
revenue per member is compared by Welch's t (unequal variances: a few big baskets make the
treated group's spread differ from the holdout's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from scipy import stats

from tidings.reports import wording

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # the significance level of the tests
POWER = 0.80  # the chance to detect a real difference that sample sizes are planned for
METRICS = ("converted", "clicked")
ARM_COLUMNS = ("variant", "recipients", *METRICS)
MEMBER_COLUMNS = ("holdout", "converted", "revenue_cents")


class StatsInputError(ValueError):
    """A frame handed to the statistics lacks what they need."""


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """The three numbers as JSON-ready floats."""
        return {"value": float(self.value), "low": float(self.low), "high": float(self.high)}

    def scaled(self, factor: float) -> Interval:
        """The estimate and its bounds multiplied by `factor` (a positive count)."""
        return Interval(self.value * factor, self.low * factor, self.high * factor)

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


def z_two_sided(confidence: float = CONFIDENCE) -> float:
    """The standard normal quantile of a two-sided interval: 1.96 for 95%."""
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def wilson(successes: int, trials: int) -> Interval:
    """A rate with its Wilson score interval; (0, 0, 1) when there were no trials."""
    if trials <= 0:
        return Interval(0.0, 0.0, 1.0)
    z = z_two_sided()
    rate = successes / trials
    denominator = trials + z * z
    centre = (successes + z * z / 2) / denominator
    spread = z / denominator * math.sqrt(successes * (trials - successes) / trials + z * z / 4)
    # At 0 or all successes a bound is exactly 0 or 1; the float sum can miss it by 1e-17.
    low = 0.0 if successes <= 0 else max(0.0, centre - spread)
    high = 1.0 if successes >= trials else min(1.0, centre + spread)
    return Interval(rate, low, high)


def rate_difference(successes: int, trials: int, base_successes: int, base_trials: int) -> Interval:
    """The difference of two rates (first minus base) with Newcomb's hybrid score interval."""
    first = wilson(successes, trials)
    base = wilson(base_successes, base_trials)
    value = first.value - base.value
    low = value - math.hypot(first.value - first.low, base.high - base.value)
    high = value + math.hypot(first.high - first.value, base.value - base.low)
    return Interval(value, low, high)


def two_proportion_p(successes: int, trials: int, base_successes: int, base_trials: int) -> float:
    """The two-sided p-value of the pooled two-proportion z-test; 1.0 when it is undefined
    (no trials, or nobody or everybody succeeded in both arms)."""
    if trials <= 0 or base_trials <= 0:
        return 1.0
    pooled = (successes + base_successes) / (trials + base_trials)
    variance = pooled * (1 - pooled) * (1 / trials + 1 / base_trials)
    if variance <= 0:
        return 1.0
    z = (successes / trials - base_successes / base_trials) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def recipients_needed(rate: float, base_rate: float) -> float:
    """Recipients per arm for an 80% chance to detect `rate` against `base_rate` at 5%."""
    difference = abs(rate - base_rate)
    if difference == 0:
        return math.inf
    pooled = (rate + base_rate) / 2
    z_alpha, z_power = z_two_sided(), float(stats.norm.ppf(POWER))
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        rate * (1 - rate) + base_rate * (1 - base_rate)
    )
    return (spread / difference) ** 2


def detectable_difference(base_rate: float, recipients: int) -> float:
    """The smallest difference from `base_rate` that `recipients` per arm detect with 80%
    power at 5% (an approximation that treats both arms as having the base rate)."""
    if recipients <= 0:
        return 1.0
    variance = max(base_rate * (1 - base_rate), 1 / recipients)
    z_alpha, z_power = z_two_sided(), float(stats.norm.ppf(POWER))
    return (z_alpha + z_power) * math.sqrt(2 * variance / recipients)


def _check_columns(frame: pl.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise StatsInputError(
            f"{what} needs the columns {', '.join(needed)}; missing: {', '.join(missing)}"
        )


def ab_summary(arms: pl.DataFrame, *, control: str) -> list[dict[str, Any]]:
    """Compares each variant with the control on orders and clicks, with a verdict."""
    _check_columns(arms, ARM_COLUMNS, "an A/B summary")
    rows = {str(row["variant"]): row for row in arms.select(ARM_COLUMNS).iter_rows(named=True)}
    if control not in rows:
        raise StatsInputError(
            f"the control variant '{control}' is not among the arms ({', '.join(sorted(rows))})"
        )
    base = rows[control]
    return [
        _compare(name, row, control, base) for name, row in sorted(rows.items()) if name != control
    ]


def _compare(name: str, row: dict[str, Any], control: str, base: dict[str, Any]) -> dict[str, Any]:
    metrics = {
        metric: _compare_metric(
            metric,
            (int(row[metric] or 0), int(row["recipients"] or 0)),
            (int(base[metric] or 0), int(base["recipients"] or 0)),
            names=(name, control),
        )
        for metric in METRICS
    }
    orders, clicks = metrics["converted"], metrics["clicked"]
    verdict = orders["verdict"]
    if clicks["significant"]:
        verdict = f"{verdict}; {clicks['verdict']}"
    return {
        "variant": name,
        "control": control,
        "recipients": int(row["recipients"] or 0),
        "control_recipients": int(base["recipients"] or 0),
        **metrics,
        "winner": bool(orders["significant"] and orders["difference"]["value"] > 0),
        "verdict": verdict,
    }


def _compare_metric(
    metric: str, arm: tuple[int, int], base: tuple[int, int], *, names: tuple[str, str]
) -> dict[str, Any]:
    (successes, trials), (base_successes, base_trials) = arm, base
    variant_rate, control_rate = wilson(successes, trials), wilson(base_successes, base_trials)
    difference = rate_difference(successes, trials, base_successes, base_trials)
    p_value = two_proportion_p(successes, trials, base_successes, base_trials)
    significant = p_value < ALPHA and trials > 0 and base_trials > 0
    needed = recipients_needed(variant_rate.value, control_rate.value)
    more = None if math.isinf(needed) else max(0, math.ceil(needed) - min(trials, base_trials))
    detectable = detectable_difference(control_rate.value, min(trials, base_trials))
    words = {
        "variant": names[0],
        "control": names[1],
        "metric": wording.METRIC_WORDS[metric],
        "p": wording.p_text(p_value),
    }
    if trials <= 0 or base_trials <= 0:
        verdict = wording.AB_NOTHING_SENT.format(**words)
    elif significant:
        better = difference.value > 0
        verdict = (wording.AB_BEATS if better else wording.AB_WORSE).format(**words)
    elif more is None:
        mde = wording.percent(detectable, 1).rstrip("%")
        recipients = f"{min(trials, base_trials):,}"
        verdict = wording.AB_NO_DIFFERENCE.format(**words, recipients=recipients, mde=mde)
    elif more > 0:
        verdict = wording.AB_NEED_MORE.format(more=wording.about(more))
    else:
        verdict = wording.AB_NO_CLEAR.format(**words)
    return {
        "count": successes,
        "control_count": base_successes,
        "rate": variant_rate.as_dict(),
        "control_rate": control_rate.as_dict(),
        "difference": difference.as_dict(),
        "p_value": p_value,
        "significant": significant,
        "more_recipients_needed": more,
        "detectable_difference": detectable,
        "verdict": verdict,
    }


def welch_difference(
    mean: float, variance: float, size: int, base_mean: float, base_variance: float, base_size: int
) -> tuple[Interval, float]:
    """The difference of two means (first minus base) with Welch's 95% interval and p-value;
    the interval collapses to the point and p is 1.0 when neither group varies."""
    value = mean - base_mean
    squared_error = variance / size + base_variance / base_size
    if squared_error <= 0:
        return Interval(value, value, value), 1.0
    error = math.sqrt(squared_error)
    freedom = squared_error**2 / (
        (variance / size) ** 2 / (size - 1) + (base_variance / base_size) ** 2 / (base_size - 1)
    )
    quantile = float(stats.t.ppf(1 - ALPHA / 2, freedom))
    p_value = float(2 * stats.t.sf(abs(value) / error, freedom))
    return Interval(value, value - quantile * error, value + quantile * error), p_value


def _groups(members: pl.DataFrame) -> dict[bool, dict[str, Any]]:
    """Size, conversions and revenue (total, mean, variance) of the treated and the holdout."""
    summary = (
        members.lazy()
        .select(
            pl.col("holdout").cast(pl.Boolean).fill_null(False),
            pl.col("converted").cast(pl.Int64).fill_null(0).clip(0, 1),
            pl.col("revenue_cents").cast(pl.Float64).fill_null(0.0),
        )
        .group_by("holdout")
        .agg(
            pl.len().alias("members"),
            pl.col("converted").sum().alias("converted"),
            pl.col("revenue_cents").sum().alias("revenue_cents"),
            pl.col("revenue_cents").mean().alias("mean"),
            pl.col("revenue_cents").var(ddof=1).alias("variance"),
        )
        .collect()
    )
    empty = {"members": 0, "converted": 0, "revenue_cents": 0.0, "mean": 0.0, "variance": None}
    found = {bool(row["holdout"]): row for row in summary.iter_rows(named=True)}
    return {side: found.get(side, empty) for side in (False, True)}


def _mean_interval(group: dict[str, Any]) -> dict[str, float] | None:
    """Revenue per member with its t interval; None below two members (no spread known)."""
    size = int(group["members"])
    if size < 2:
        return None
    error = math.sqrt(float(group["variance"] or 0.0) / size)
    quantile = float(stats.t.ppf(1 - ALPHA / 2, size - 1))
    mean = float(group["mean"])
    return Interval(mean, mean - quantile * error, mean + quantile * error).as_dict()


def _group_out(group: dict[str, Any]) -> dict[str, Any]:
    size, converted = int(group["members"]), int(group["converted"])
    return {
        "members": size,
        "converted": converted,
        "conversion_rate": wilson(converted, size).as_dict(),
        "revenue_cents": round(float(group["revenue_cents"])),
        "revenue_per_member_cents": _mean_interval(group),
    }


def holdout_lift(members: pl.DataFrame) -> dict[str, Any]:
    """What the campaign caused: treated minus holdout in conversion and revenue per member,
    with 95% intervals, scaled to the treated group as incremental orders and revenue.

    One row per audience member: `holdout` (bool), `converted` (0/1: ordered at all, so each
    converting member counts as one order) and `revenue_cents`.
    """
    _check_columns(members, MEMBER_COLUMNS, "a lift over holdout")
    groups = _groups(members)
    treated, holdout = groups[False], groups[True]
    out: dict[str, Any] = {
        "treated": _group_out(treated),
        "holdout": _group_out(holdout),
        "conversion_difference": None,
        "conversion_p_value": None,
        "revenue_difference_cents": None,
        "revenue_p_value": None,
        "incremental_conversions": None,
        "incremental_revenue_cents": None,
        "measurable": False,
    }
    if holdout["members"] == 0 or treated["members"] == 0:
        out["verdict"] = wording.LIFT_NO_HOLDOUT if treated["members"] else wording.LIFT_NO_TREATED
        return out
    size = int(treated["members"])
    counts = (int(treated["converted"]), size, int(holdout["converted"]), int(holdout["members"]))
    conversion = rate_difference(*counts)
    out["conversion_difference"] = conversion.as_dict()
    out["conversion_p_value"] = two_proportion_p(*counts)
    out["incremental_conversions"] = conversion.scaled(size).as_dict()
    revenue = None
    if treated["members"] >= 2 and holdout["members"] >= 2:
        revenue, p_value = welch_difference(
            float(treated["mean"]),
            float(treated["variance"] or 0.0),
            size,
            float(holdout["mean"]),
            float(holdout["variance"] or 0.0),
            int(holdout["members"]),
        )
        out["revenue_difference_cents"] = revenue.as_dict()
        out["revenue_p_value"] = p_value
        out["incremental_revenue_cents"] = revenue.scaled(size).as_dict()
    out["measurable"] = conversion.excludes_zero()
    out["verdict"] = _lift_verdict(conversion.scaled(size), revenue and revenue.scaled(size))
    return out


def _lift_verdict(orders: Interval, revenue: Interval | None) -> str:
    if not orders.excludes_zero():
        return wording.LIFT_NONE
    if orders.value < 0:
        return wording.LIFT_COST.format(
            fewer=wording.about(-orders.value),
            low=wording.about(-orders.high),
            high=wording.about(-orders.low),
        )
    verdict = wording.LIFT_CAUSED.format(
        extra=wording.about(orders.value),
        low=wording.about(orders.low),
        high=wording.about(orders.high),
    )
    if revenue is not None and revenue.low > 0:
        extra = wording.LIFT_REVENUE.format(
            extra=wording.yuan(revenue.value),
            low=wording.yuan(revenue.low),
            high=wording.yuan(revenue.high),
        )
        verdict = f"{verdict}, {extra}"
    return verdict
