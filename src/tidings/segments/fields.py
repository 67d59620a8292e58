"""Every field a segment rule can use, in one place: its name, type and meaning.

A field's name is exactly the name of a column of the audience frame
(`tidings.segments.audience.audience_frame`). Money fields hold integer cents (分) in the
frame and are written in yuan in rules; the compiler converts.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass

import polars as pl


class FieldType(enum.StrEnum):
    """The kinds of value a rule works with."""

    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    MONEY = "money"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    LIST = "list"


# How each type sits in the audience frame (money: integer cents; times: UTC).
FRAME_DTYPES: dict[FieldType, pl.DataType] = {
    FieldType.TEXT: pl.String(),
    FieldType.INTEGER: pl.Int64(),
    FieldType.NUMBER: pl.Float64(),
    FieldType.MONEY: pl.Int64(),
    FieldType.BOOL: pl.Boolean(),
    FieldType.DATE: pl.Date(),
    FieldType.DATETIME: pl.Datetime("us", "UTC"),
    FieldType.LIST: pl.List(pl.String()),
}

# How to write a value of each type, for error messages.
HOW_TO_WRITE: dict[FieldType, str] = {
    FieldType.TEXT: 'a quoted value, as in tier == "gold"',
    FieldType.INTEGER: "a number, as in orders_90d >= 3",
    FieldType.NUMBER: "a number, as in p_alive < 0.3",
    FieldType.MONEY: "an amount in yuan, as in spend_90d > 200",
    FieldType.BOOL: "true or false, as in churn_risk == true",
    FieldType.DATE: "a date such as 2025-01-31 or today - 30d",
    FieldType.DATETIME: "a date such as 2025-01-31 or today - 30d",
    FieldType.LIST: 'a quoted value with in, as in "榴莲爱好者" in tags',
}


@dataclass(frozen=True)
class Field:
    """One field of the audience: where it comes from and what it means."""

    name: str
    type: FieldType
    source: str  # members, stores, profiles, consent, points (the ledger) or derived
    zh: str
    en: str


def _field(name: str, kind: FieldType, source: str, zh: str, en: str) -> Field:
    return Field(name=name, type=kind, source=source, zh=zh, en=en)


T, INT, N, M = FieldType.TEXT, FieldType.INTEGER, FieldType.NUMBER, FieldType.MONEY
B, D, DT, L = FieldType.BOOL, FieldType.DATE, FieldType.DATETIME, FieldType.LIST

FIELD_LIST: tuple[Field, ...] = (
    _field("member_id", INT, "members", "会员编号（系统内）", "Member id in tidings"),
    _field("code", T, "members", "会员卡号", "The retailer's member code"),
    _field("phone", T, "members", "手机号（E.164）", "Phone number, E.164 (+86...)"),
    _field("phone_status", T, "members", "手机号状态", "ok, missing, invalid or landline"),
    _field("name", T, "members", "姓名", "Name"),
    _field("gender", T, "members", "性别（M/F）", "Gender, M or F"),
    _field("birthday", D, "members", "生日", "Birthday (as recorded; see birthday_is_lunar)"),
    _field("birthday_is_lunar", B, "members", "是否农历生日", "Whether the birthday is lunar"),
    _field("age", INT, "derived", "年龄（周岁）", "Age in whole years, from the birthday"),
    _field("store_code", T, "stores", "开卡门店编号", "Code of the member's home store"),
    _field("store_name", T, "stores", "开卡门店名称", "Name of the member's home store"),
    _field("city", T, "stores", "城市", "City of the member's home store"),
    _field("store_type", T, "stores", "门店类型", "Type of the home store (社区店, 商场店, ...)"),
    _field("points", INT, "members", "积分", "Points balance"),
    _field("points_balance", INT, "members", "积分余额", "Points balance (the ledger's)"),
    _field(
        "points_expiring",
        INT,
        "points",
        "即将过期积分",
        "Points expiring within TIDINGS_POINTS_EXPIRING_DAYS (default 30)",
    ),
    _field(
        "points_expiry_date", D, "points", "积分过期日", "First day some of those points expire"
    ),
    _field("registered_at", DT, "members", "注册时间", "When the member joined"),
    _field("timezone", T, "members", "时区", "The member's own timezone; empty: the brand's"),
    _field("consent", B, "consent", "营销短信授权", "Latest marketing consent is an opt-in"),
    _field("tags", L, "derived", "标签（手工与计算）", "Tags: manual ones and computed ones"),
    _field("first_order_at", DT, "profiles", "首次购买时间", "Time of the first order"),
    _field("last_order_at", DT, "profiles", "最近购买时间", "Time of the latest order"),
    _field("days_since_last_order", INT, "profiles", "距上次购买天数", "Days since the last order"),
    _field("orders_total", INT, "profiles", "累计订单数", "Orders ever"),
    _field("spend_total", M, "profiles", "累计消费（元）", "Spend ever, in yuan"),
    _field("orders_90d", INT, "profiles", "近90天订单数", "Orders in the last 90 days"),
    _field("spend_90d", M, "profiles", "近90天消费（元）", "Spend in the last 90 days, yuan"),
    _field("orders_365d", INT, "profiles", "近365天订单数", "Orders in the last 365 days"),
    _field("spend_365d", M, "profiles", "近365天消费（元）", "Spend in the last 365 days, yuan"),
    _field("avg_order", M, "profiles", "客单价（元）", "Average order value, in yuan"),
    _field("r_score", INT, "profiles", "R 分（1–5，5 为最近）", "Recency score, 1-5 (5 = recent)"),
    _field("f_score", INT, "profiles", "F 分（1–5）", "Frequency score, 1-5"),
    _field("m_score", INT, "profiles", "M 分（1–5）", "Monetary score, 1-5"),
    _field("rfm_segment", T, "profiles", "RFM 分群", "RFM segment (Champions, At risk, ...)"),
    _field("value_group", T, "profiles", "价值分组", "Value group: 价值型, 潜力型, 沉睡型"),
    _field("tier", T, "profiles", "会员等级", "Tier: bronze, silver or gold"),
    _field("previous_tier", T, "profiles", "上次等级", "Tier before the latest change"),
    _field("tier_changed_at", D, "profiles", "等级变更日期", "Day the tier last changed"),
    _field(
        "lifecycle_stage",
        T,
        "profiles",
        "生命周期阶段",
        "new, active, dormant, lapsed or never (no order yet)",
    ),
    _field("top_category", T, "profiles", "最常购品类", "Category with the largest spend"),
    _field(
        "recommended_product", T, "profiles", "推荐商品", "Product to offer next (see the reason)"
    ),
    _field("recommended_category", T, "profiles", "推荐品类", "Category of the product to offer"),
    _field("discount_share", N, "profiles", "折扣购买占比", "Share of lines bought on discount"),
    _field("main_store_code", T, "profiles", "常去门店编号", "Code of the store used most"),
    _field("main_store_share", N, "profiles", "常去门店占比", "Share of orders at the main store"),
    _field("best_hour", INT, "profiles", "最佳发送时刻（0–23）", "Best local hour to send, 0-23"),
    _field("next_run_out_on", D, "profiles", "预计补货日", "Day the member runs out of a staple"),
    _field("p_alive", N, "profiles", "活跃概率", "Probability the member is still active"),
    _field(
        "expected_orders_90d", N, "profiles", "未来90天预计订单", "Expected orders, next 90 days"
    ),
    _field("expected_aov", M, "profiles", "预计客单价（元）", "Expected order value, yuan"),
    _field("clv_12m", M, "profiles", "12个月客户价值（元）", "12-month customer value, yuan"),
    _field("churn_risk", B, "profiles", "流失风险", "Flagged as at risk of churning"),
)

FIELDS: dict[str, Field] = {field.name: field for field in FIELD_LIST}

# Profile columns that hold a field under another name (money is stored as cents).
PROFILE_COLUMNS: dict[str, str] = {
    "spend_total": "spend_total_cents",
    "spend_90d": "spend_90d_cents",
    "spend_365d": "spend_365d_cents",
    "avg_order": "avg_order_cents",
    "expected_aov": "expected_aov_cents",
    "clv_12m": "clv_12m_cents",
}


def audience_schema() -> dict[str, pl.DataType]:
    """Returns the column names and types of the audience frame, in field order."""
    return {field.name: FRAME_DTYPES[field.type] for field in FIELD_LIST}


def suggest_field(name: str) -> str | None:
    """Returns the field a mistyped or Chinese name most likely means, or None."""
    by_label = {field.zh.split("（")[0]: field.name for field in FIELD_LIST}
    if name in by_label:
        return by_label[name]
    close = difflib.get_close_matches(name, list(FIELDS), n=1, cutoff=0.6)
    if close:
        return close[0]
    close = difflib.get_close_matches(name, list(by_label), n=1, cutoff=0.6)
    return by_label[close[0]] if close else None


def describe() -> list[dict[str, str]]:
    """Lists every field as name, type, zh and en, for `tidings segment fields` and the API."""
    return [
        {"name": field.name, "type": field.type.value, "zh": field.zh, "en": field.en}
        for field in FIELD_LIST
    ]
