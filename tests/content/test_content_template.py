"""Templates: checks with positions, salutations, formats, framing, bulk and single rendering."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.content.render import render, render_one
from tidings.content.template import (
    AUDIENCE_COLUMNS,
    MessageKind,
    TemplateError,
    frame_template,
    parse_template,
    prepare_template,
)

COLUMNS = (*AUDIENCE_COLUMNS, "coupon", "link", "expiry_date")


def audience(**columns: list[object]) -> pl.DataFrame:
    return pl.DataFrame(columns)


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("您好{nmae}，欢迎", 2, "unknown field 'nmae'; did you mean 'name'?"),
        ("积分{points", 2, "'{' is never closed"),
        ("积分}还有", 2, "'}' has no matching '{'"),
        ("点击{link}领取", 2, "the campaign provides no link"),
        ("券码{coupon}", 2, "the campaign provides no coupon"),
        ("{points:xx}", 0, "unknown format 'xx'"),
        ("{ name}", 0, "does not start with a field name"),
    ],
)
def test_a_faulty_template_says_where_and_what(text: str, position: int, words: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    assert caught.value.position == position
    assert str(caught.value).startswith(f"column {position + 1}: ")
    assert words in str(caught.value)


def test_link_and_coupon_are_accepted_when_the_campaign_provides_them() -> None:
    template = parse_template("券{coupon}见{link}", columns=COLUMNS)
    assert [p.field for p in template.placeholders] == ["coupon", "link"]


def test_any_audience_column_is_a_placeholder() -> None:
    template = parse_template("您的{favourite_brand}到货了", columns=[*COLUMNS, "favourite_brand"])
    out = render(template, audience(favourite_brand=["安踏"]))
    assert out["text"].to_list() == ["您的安踏到货了"]


def test_doubled_braces_are_literal_braces() -> None:
    template = parse_template("{{活动}} {name}")
    assert render_one(template, {"name": "李雷"}).text == "{活动} 李雷"


def test_surname_salutation_handles_gender_and_compound_surnames() -> None:
    template = parse_template("{surname|会员}您好")
    frame = audience(
        name=["张伟", "欧阳娜娜", "诸葛亮", "司马相如", "王", "Anna", "李四", None],
        gender=["M", "F", "M", "M", "F", "F", None, "F"],
    )
    texts = render(template, frame)["text"].to_list()
    assert texts == [
        "张先生您好",
        "欧阳女士您好",
        "诸葛先生您好",
        "司马先生您好",
        "王女士您好",
        "会员您好",
        "会员您好",
        "会员您好",
    ]


def test_tier_points_and_dates_are_shown_the_chinese_way() -> None:
    template = parse_template(
        "{tier}您有{points:,}分，{expiry_date}到期（{expiry_date:ymd}，{expiry_date:iso}）",
        columns=COLUMNS,
    )
    frame = audience(
        tier=["gold", "silver"], points=[1234567, -1500], expiry_date=[date(2025, 12, 5)] * 2
    )
    assert render(template, frame)["text"].to_list() == [
        "金卡会员您有1,234,567分，12月5日到期（2025年12月5日，2025-12-05）",
        "银卡会员您有-1,500分，12月5日到期（2025年12月5日，2025-12-05）",
    ]


def test_a_format_that_does_not_fit_the_column_is_an_error_with_its_position() -> None:
    template = parse_template("生日{birthday:,}")
    with pytest.raises(TemplateError, match=r"column 3: .*cannot format dates"):
        render(template, audience(birthday=[date(1990, 1, 1)]))
    with pytest.raises(TemplateError, match=r"column 3: .*cannot format dates"):
        render_one(template, {"birthday": date(1990, 1, 1)})


def test_a_member_with_an_empty_required_field_is_skipped_with_the_reason() -> None:
    template = parse_template("{name}您好，{store}欢迎您")
    frame = audience(
        name=["李雷", "  ", "韩梅梅", None], store_name=["五角场店", "徐汇店", None, None]
    )
    out = render(template, frame)
    assert out["text"].to_list() == ["李雷您好，五角场店欢迎您", None, None, None]
    assert out["skip_reason"].to_list() == [
        None,
        "missing_field:name",
        "missing_field:store",
        "missing_field:name",
    ]


def test_marketing_is_framed_with_signature_and_opt_out_transactional_with_signature_only() -> None:
    body = parse_template("{name}，您的积分即将到期")
    marketing = frame_template(body, kind=MessageKind.MARKETING, brand_name="好邻居")
    receipt = frame_template(body, kind=MessageKind.TRANSACTIONAL, brand_name="好邻居")
    assert (
        render_one(marketing, {"name": "李雷"}).text
        == "【好邻居】李雷，您的积分即将到期 拒收请回复R"
    )
    assert render_one(receipt, {"name": "李雷"}).text == "【好邻居】李雷，您的积分即将到期"


def test_framing_adds_nothing_the_template_already_has() -> None:
    template = prepare_template(
        "【好邻居】{name}，新品到店。回TD退订",
        kind=MessageKind.MARKETING,
        brand_name="好邻居",
        opt_out_text="回TD退订",
    )
    assert render_one(template, {"name": "李雷"}).text == "【好邻居】李雷，新品到店。回TD退订"


def test_a_lone_surrogate_is_refused_with_its_position() -> None:
    with pytest.raises(TemplateError, match="column 4: half of an emoji") as caught:
        parse_template("您好，\ud83d{name}", columns=COLUMNS)
    assert caught.value.position == 3


def test_framing_keeps_positions_pointing_into_the_framed_source() -> None:
    template = prepare_template("{name}好", kind=MessageKind.MARKETING, brand_name="好邻居")
    (placeholder,) = template.placeholders
    assert template.source[placeholder.position :].startswith("{name}")


names = st.one_of(
    st.none(),
    st.sampled_from(["张伟", "欧阳娜娜", "王", " 李四 ", "", "   ", "Anna", "司马"]),
    st.text(max_size=6),
)
members = st.fixed_dictionaries(
    {
        "name": names,
        "gender": st.sampled_from(["F", "M", None, "x"]),
        "points": st.one_of(st.none(), st.integers(min_value=-(10**12), max_value=10**12)),
        "tier": st.sampled_from(["bronze", "silver", "gold", "vip", None]),
        "store_name": st.one_of(st.none(), st.text(max_size=8)),
        "expiry_date": st.one_of(st.none(), st.dates()),
    }
)
placeholders = st.sampled_from(
    [
        "{name}",
        "{name|会员}",
        "{surname|尊敬的会员}",
        "{surname}",
        "{points}",
        "{points:,}",
        "{points:,|0}",
        "{tier|会员}",
        "{store}",
        "{expiry_date}",
        "{expiry_date:ymd}",
        "{expiry_date:iso|近期}",
    ]
)
# Decoded text holds no lone surrogates; a template with one is refused (tested below).
literals = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="{}"), max_size=5)
templates = st.lists(st.one_of(placeholders, literals), max_size=6).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    text=templates,
    rows=st.lists(members, min_size=1, max_size=8),
    kind=st.sampled_from(list(MessageKind)),
)
def test_rendering_one_member_equals_the_bulk_render(text: str, rows: list, kind) -> None:
    template = prepare_template(text, kind=kind, columns=COLUMNS, brand_name="好邻居")
    frame = pl.DataFrame(
        rows,
        schema={
            "name": pl.String,
            "gender": pl.String,
            "points": pl.Int64,
            "tier": pl.String,
            "store_name": pl.String,
            "expiry_date": pl.Date,
        },
    )
    out = render(template, frame)
    for values, text_out, reason in zip(rows, out["text"], out["skip_reason"], strict=True):
        one = render_one(template, values)
        assert (one.text, one.skip_reason) == (text_out, reason)
        assert (text_out is None) != (reason is None)


def test_the_preference_link_is_the_same_one_by_one_and_in_bulk() -> None:
    template = parse_template("管理偏好 {preference_link}")
    frame = pl.DataFrame({"member_id": [7, 1_234_567, None]}, schema={"member_id": pl.Int64})
    bulk = render(template, frame)
    ones = [render_one(template, {"member_id": m}) for m in frame["member_id"]]
    assert bulk["text"].to_list() == [one.text for one in ones]
    assert bulk["skip_reason"][2] == "missing_field:preference_link"
    first, second = bulk["text"][0], bulk["text"][1]
    assert first != second and "/p/7" in first and "/p/1234567" in second
    with pytest.raises(TemplateError):
        render(parse_template("{preference_link:md}"), frame)
