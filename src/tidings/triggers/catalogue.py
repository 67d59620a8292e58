"""The built-in triggers: what each reacts to, its parameters with their defaults, its wording.

Defaults follow the articles: a birthday greeting 3 days ahead, a follow-up 3 days after a
first order, a win-back after 30 days without an order, cart reminders at 1 and 24 hours
(nothing after 48), a replenishment note 5 days before a run-out, points expiring within 15
days, a note a week before a tier lapses, a receipt 30 minutes after an order, a holiday
warm-up 7 days ahead, weather alerts and a geofence offer within 3 km at most once a week.
Every built-in is seeded enabled except the holiday warm-up, which writes to everyone unless
given a segment: an operator turns it on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tidings.dispatch.models import MessageKind

CUSTOM = "custom"
MINUTES_PER_DAY = 24 * 60


class Reacts(StrEnum):
    """What makes a trigger fire: the scheduler's daily look at dates, or an arriving event."""

    DATE = "date"
    EVENT = "event"


@dataclass(frozen=True)
class Builtin:
    """One built-in trigger as seeded: its key (also its name), parameters and wording."""

    key: str
    reacts: Reacts
    summary: str
    template: str
    config: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # fields the trigger gives its template beyond the audience's
    enabled: bool = True
    message_kind: MessageKind = MessageKind.TRIGGER
    offer_type: str | None = None
    expiry_minutes: int | None = MINUTES_PER_DAY


WEATHER_ADVICE = {
    "rain": "雨天出行请带好雨具，门店雨具今日8折",
    "heat": "高温天气注意防暑，门店冷饮第二件半价",
    "cold": "降温了注意保暖，门店热饮暖品今日特惠",
    "typhoon": "台风来袭请减少外出，可在线下单送货上门",
}

BUILTINS: tuple[Builtin, ...] = (
    Builtin(
        key="birthday",
        reacts=Reacts.DATE,
        summary="Birthday greeting N days before (lunar birthdays on this year's solar date).",
        template="{surname|亲爱的会员}，{birthday_on}是您的生日，提前祝您生日快乐！"
        "生日当周到店出示本短信享会员专属礼遇。",
        config={"days_before": 3},
        columns=("birthday_on",),
        offer_type="birthday",
        expiry_minutes=None,  # until the end of the birthday
    ),
    Builtin(
        key="first_order",
        reacts=Reacts.DATE,
        summary="Follow-up N days after a member's first order.",
        template="{surname|亲爱的会员}，感谢您在{store|我们门店}的第一次购物！"
        "购物体验如何？欢迎回复1-5为我们打分。",
        config={"days_after": 3, "window_days": 2},
    ),
    Builtin(
        key="winback",
        reacts=Reacts.DATE,
        summary="Win-back after N days without an order, with an optional second step.",
        template="{surname|亲爱的会员}，好久不见！我们为您准备了回归礼，本周到店消费即享惊喜。",
        config={"days": 30, "second_step_days": None, "window_days": 2},
        offer_type="winback",
        expiry_minutes=3 * MINUTES_PER_DAY,
    ),
    Builtin(
        key="replenishment",
        reacts=Reacts.DATE,
        summary="Reminder N days before a member runs out of a staple they buy, naming it.",
        template="{surname|亲爱的会员}，您常买的{product}预计{run_out_on}用完，记得及时补货哦。",
        config={"days_before": 5},
        columns=("product", "run_out_on"),
        offer_type="replenishment",
    ),
    Builtin(
        key="points_expiring",
        reacts=Reacts.DATE,
        summary="Reminder of points that expire in the next N days.",
        template="{surname|亲爱的会员}，您有{points_expiring:,}积分将于{points_expiry_date}到期，"
        "快来兑换好礼吧。",
        config={"days_ahead": 15},
        columns=("points_expiring", "points_expiry_date"),
    ),
    Builtin(
        key="tier_change",
        reacts=Reacts.DATE,
        summary="Congratulations on moving up a tier (within window_days of the change).",
        template="{surname|亲爱的会员}，恭喜您升级为{tier}！专属权益已为您开通，感谢您的支持。",
        config={"window_days": 3},
    ),
    Builtin(
        key="tier_loss",
        reacts=Reacts.DATE,
        summary="A gentle note days_before the tier lapses, as orders leave the tier window.",
        template="{surname|亲爱的会员}，您的{tier}权益将保留至{tier_kept_until}，"
        "此前再消费{keep_spend_yuan:,}元即可继续享有，期待您再次光临。",
        config={"days_before": 7},
        columns=("tier_kept_until", "keep_spend_yuan"),
    ),
    Builtin(
        key="holiday_warmup",
        reacts=Reacts.DATE,
        summary="Warm-up N days before a public holiday, to a segment (its condition).",
        template="{surname|亲爱的会员}，{holiday}假期（{holiday_on}起）将至，"
        "节前到店备货享会员专属优惠。",
        config={"days_before": 7},
        columns=("holiday", "holiday_on"),
        enabled=False,
        offer_type="holiday",
        expiry_minutes=2 * MINUTES_PER_DAY,
    ),
    Builtin(
        key="cart_abandoned",
        reacts=Reacts.EVENT,
        summary="Cart reminders 1 h and 24 h after a cart event without an order; none after 48 h.",
        template="{surname|亲爱的会员}，您的购物车里还有{product|心仪的商品}，库存有限，别错过哦。",
        config={
            "first_after_minutes": 60,
            "second_after_minutes": 1440,
            "stop_after_minutes": 2880,
        },
        columns=("product",),
        expiry_minutes=None,  # stop_after_minutes after the cart event
    ),
    Builtin(
        key="receipt",
        reacts=Reacts.EVENT,
        summary="Transactional receipt with points earned and balance, after a POS order.",
        template="您于{order_day}在{order_store|门店}消费{amount_yuan}元，"
        "本次获得{points_earned}积分，当前积分{points_balance}。",
        # Orders older than max_age_minutes when they arrive (a history import) get none.
        config={"delay_minutes": 30, "max_age_minutes": 1440},
        columns=("order_day", "order_store", "amount_yuan", "points_earned", "points_balance"),
        message_kind=MessageKind.TRANSACTIONAL,
    ),
    Builtin(
        key="weather",
        reacts=Reacts.EVENT,
        summary="Weather alert (rain, heat, cold, typhoon) to members of the city's stores.",
        template="{surname|亲爱的会员}，{advice}。",
        config={"advice": WEATHER_ADVICE},
        columns=("advice",),
        expiry_minutes=12 * 60,
    ),
    Builtin(
        key="geofence",
        reacts=Reacts.EVENT,
        summary="Instant offer near a store (within radius_km), at most once per 7 days.",
        template="{surname|亲爱的会员}，您就在{nearby_store}附近，今日到店出示本短信享会员专属优惠。",
        config={"radius_km": 3.0, "cooldown_days": 7},
        columns=("nearby_store",),
        offer_type="geofence",
        expiry_minutes=120,
    ),
)
BUILTIN_BY_KEY = {builtin.key: builtin for builtin in BUILTINS}


def builtin(kind: str) -> Builtin | None:
    """The built-in trigger of a kind, or None for a custom one."""
    return BUILTIN_BY_KEY.get(kind)
