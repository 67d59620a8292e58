"""The wizard's optional answers as campaign fields: a coupon (one code for all, or one per
member issued at planning), the link's UTM parameters, and the rollout's health gates."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

PERCENT = Decimal(100)


class OptionError(ValueError):
    """A wizard answer that cannot become a campaign field (the message says which)."""


def _number(text: str, what: str) -> Decimal | None:
    text = text.strip().replace("，", "").replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation as error:
        raise OptionError(f"{what}: '{text}' is not a number") from error
    if not value.is_finite() or value < 0:
        raise OptionError(f"{what}: '{text}' must be zero or more")
    return value


def coupon_fields(
    *, kind: str, code: str, value_yuan: str, percent: str, min_spend_yuan: str, valid_days: str
) -> dict[str, Any]:
    """`coupon` or `coupon_offer` for CampaignCreate from the content step's coupon answers."""
    if kind == "none" or not kind:
        return {}
    if kind == "shared":
        if not code.strip():
            raise OptionError("coupon: write the code every member sees, e.g. VIP2026")
        return {"coupon": code.strip()}
    if kind != "per_member":
        raise OptionError(f"coupon: unknown kind '{kind}'; choose none, shared or per_member")
    value = _number(value_yuan, "coupon value (yuan)")
    off = _number(percent, "coupon percent off")
    if (value is None) == (off is None):
        raise OptionError("coupon: give either a value in yuan or a percent off, not both")
    spend = _number(min_spend_yuan, "coupon minimum spend (yuan)") or Decimal(0)
    days = _number(valid_days, "coupon valid days")
    return {
        "coupon_offer": {
            "value_cents": None if value is None else int(value * 100),
            "discount_percent": None if off is None else int(off),
            "min_spend_cents": int(spend * 100),
            "valid_days": None if days is None else int(days),
        }
    }


def gate_fields(
    *, delivery_min: str, opt_out_max: str, complaint_max: str, promote_winner: bool
) -> dict[str, Any]:
    """`gates` (shares from percents; blank keeps the default) and `promote_winner`."""
    gates: dict[str, float] = {}
    for name, text in (
        ("delivery_min", delivery_min),
        ("opt_out_max", opt_out_max),
        ("complaint_max", complaint_max),
    ):
        value = _number(text, f"gate {name} (%)")
        if value is None:
            continue
        if value > PERCENT:
            raise OptionError(f"gate {name}: {value}% is more than 100%")
        gates[name] = float(value / PERCENT)
    return {"gates": gates or None, "promote_winner": promote_winner}
