"""The words of every automatic answer, kept together so a brand can reword them
(TIDINGS_REPLY_TEXTS) and a reader sees at once what members are told.

Fields in braces are filled per answer; a field a text does not use is simply left out.
"""

from __future__ import annotations

from collections.abc import Mapping

from tidings.config import Settings

DEFAULT_TEXTS: dict[str, str] = {
    "opt_out": "您已退订营销短信，此后不再收到活动信息。如需恢复请回复“订阅”。",
    "opt_in": "您已重新订阅会员活动短信，拒收请回复R。",
    "help": "回复“积分”查积分，“库存+商品名”查库存，“预约+时间”预约到店；人工服务请直接留言。",
    "points": "{name|尊敬的会员}，您当前积分{points}分。",
    "points_expiring": (
        "{name|尊敬的会员}，您当前积分{points}分，其中{expiring}分将于{expiry_date}到期，请及时使用。"
    ),
    "stock_here": "{product}：您的门店{store}现有{quantity}件。",
    "stock_nearby": "{product}：{store}暂时缺货，附近有货：{nearby}。",
    "stock_none": "{product}：附近门店暂时都缺货，到货后门店会联系您。",
    "stock_unknown": "没有找到“{query}”这件商品，请回复“库存+商品名”，如：库存 牛奶。",
    "delivery": "已收到您的送货请求，{store}将尽快与您联系确认送货时间。",
    "booking": "已为您预约{store}{when}，届时恭候光临。",
    "booking_when": "请回复“预约+日期时间”，如：预约 周六下午3点。",
    "survey": "感谢您的反馈！",
    "coupon_missing": "暂未查到您近期的优惠券，已为您转人工核实，请稍候。",
}


class _Fields(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return ""


def text_for(name: str, settings: Settings, fields: Mapping[str, object] | None = None) -> str:
    """The brand's wording of answer `name` with `fields` filled in.

    `{field|fallback}` shows the fallback when the field is empty.
    """
    template = settings.reply_texts.get(name) or DEFAULT_TEXTS[name]
    values = _Fields(fields or {})
    out: list[str] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        body, _, rest = after.partition("}")
        field, _, fallback = body.partition("|")
        value = values[field.strip()]
        out.append(before)
        out.append(str(value) if value not in (None, "") else fallback)
    out.append(rest)
    return "".join(out)
