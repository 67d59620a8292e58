"""The sentences reports show to people: A/B verdicts, lift verdicts and health findings,
kept together so the product speaks with one voice and can be reworded in one place."""

from __future__ import annotations

import math

# What each measured outcome is called in a sentence.
METRIC_WORDS = {"converted": "orders", "clicked": "clicks"}

AB_BEATS = "{variant} beats {control} on {metric}, {p}"
AB_WORSE = "{variant} does worse than {control} on {metric}, {p}"
AB_NO_CLEAR = "no clear difference between {variant} and {control} on {metric} yet ({p})"
AB_NEED_MORE = "not enough data yet: about {more} more recipients per variant needed"
AB_NO_DIFFERENCE = (
    "not enough data yet: no difference on {metric} so far; with {recipients} recipients per"
    " variant only a difference of {mde} percentage points or more would show"
)
AB_NOTHING_SENT = "not enough data yet: nothing sent to {variant} or {control}"

LIFT_NO_HOLDOUT = "no holdout: lift cannot be measured"
LIFT_NO_TREATED = "nobody was sent the campaign yet: lift cannot be measured"
LIFT_CAUSED = "the campaign caused about {extra} extra orders (95% CI {low}-{high})"
LIFT_COST = "the campaign seems to have cost about {fewer} orders (95% CI {low}-{high})"
LIFT_NONE = "no measurable lift yet"
LIFT_REVENUE = "and about ¥{extra} of extra revenue (95% CI ¥{low}-¥{high})"

HEALTH_LOW = "{metric} {value} is below the {threshold} threshold ({count} of {base})"
HEALTH_HIGH = "{metric} {value} is above the {threshold} threshold ({count} of {base})"
HEALTH_REPLY_LOW = (
    "reply rate {value} is below the healthy {low}-{high}: the message may not engage"
)
HEALTH_REPLY_HIGH = (
    "reply rate {value} is above the healthy {low}-{high}: check for confusion or complaints"
)
HEALTH_BREACH = "{scope} {key} on {day}: {metric} {value} is {side} the {threshold} threshold"
HEALTH_TOO_FEW = "only {count} settled messages: too few to judge (at least {minimum})"
HEALTH_METRIC_WORDS = {
    "delivery_rate": "delivery rate",
    "opt_out_rate": "opt-out rate",
    "complaint_rate": "complaint rate",
    "reply_rate": "reply rate",
}


def p_text(p_value: float) -> str:
    """'p = 0.01', 'p = 0.003' or 'p < 0.001'."""
    if p_value < 0.001:
        return "p < 0.001"
    return f"p = {p_value:.1g}" if p_value < 0.01 else f"p = {p_value:.2g}"


def about(number: float) -> str:
    """A count rounded up below 100 and to two significant figures above: '57', '3,400'."""
    if number < 100:
        return f"{max(0, math.ceil(number)):,}"
    step = 10 ** (math.floor(math.log10(number)) - 1)
    return f"{round(number / step) * step:,.0f}"


def percent(share: float, places: int = 1) -> str:
    """A share as a percentage: '98.2%'."""
    return f"{share:.{places}%}"


def yuan(cents: float) -> str:
    """Cents as whole yuan with separators: '3,400'."""
    return f"{cents / 100:,.0f}"
