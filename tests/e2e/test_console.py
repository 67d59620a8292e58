"""The console in a real browser: the campaign wizard to a launched campaign and its
results, the segment builder, answering a ticket, an analyst's masked phones and a store
manager's one store. Each main page is saved as a screenshot under test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tidings.accounts.models import Role
from tidings.db import session_scope
from tidings.members.models import Member, Store

from .conftest import Served, screenshot

# One worker of a parallel run takes them all: they share one served demo store and browser.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
MASKED = re.compile(r"^\d{3}\*{4}\d{4}$")


def test_a_marketer_launches_a_campaign_through_the_wizard(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.MARKETER)
    expect(page.locator("canvas[data-drawn]").first).to_be_visible()
    screenshot(page, "dashboard")
    page.click("text=活动")
    page.click("#new-campaign")
    page.fill("input[name=name]", "银卡会员日")
    page.fill("textarea[name=rule]", 'tier == "silver"')
    page.click("text=下一步")
    page.fill("textarea[name=template_a]", "{surname}您好，银卡会员日全场8折")
    page.fill("textarea[name=template_b]", "银卡会员日到店领好礼")
    page.click("text=下一步")
    page.fill("input[name=holdout_percent]", "10")
    page.click("text=生成计划并检查")
    expect(page).to_have_url(re.compile(r"/campaigns/\d+/review$"))
    planned = int(page.inner_text("#planned-count").replace(",", ""))
    assert planned > 0
    screenshot(page, "campaign-review")
    page.click("#launch")
    expect(page).to_have_url(re.compile(r"/campaigns/\d+$"))
    expect(page.locator("#campaign-status")).to_have_text("发送中")
    screenshot(page, "campaign-progress")
    page.click("text=效果")
    expect(page).to_have_url(re.compile(r"/campaigns/\d+/results$"))
    expect(page.locator("h1")).to_contain_text("银卡会员日")
    screenshot(page, "campaign-results")


def test_a_segment_is_built_row_by_row_and_saved(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.MARKETER)
    page.goto(served.url + "/segments")
    page.select_option("select[name=field]", "tier")
    page.select_option("select[name=operator]", "==")
    page.fill("input[name=value]", "gold")
    page.press("input[name=value]", "Tab")
    with session_scope(served.engine) as db_session:
        from tidings.profiles.models import Profile

        expected = len(
            db_session.scalars(select(Profile.member_id).where(Profile.tier == "gold")).all()
        )
    # The count and the rule come back from the server: wait for them, not for the element
    # (an earlier count may stand there until the answer is swapped in).
    expect(page.locator("#rule-text")).to_have_value('tier == "gold"')
    expect(page.locator("#audience-count")).to_have_text(f"{expected:,}")
    page.fill("input[name=name]", "金卡会员")
    page.click("#save-segment")
    expect(page.locator("#saved-segments")).to_contain_text("金卡会员")
    screenshot(page, "segments")


def test_an_agent_answers_a_ticket(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.AGENT)
    page.goto(served.url + "/tickets")
    screenshot(page, "tickets")
    page.click("#ticket-rows a")
    expect(page).to_have_url(re.compile(r"/tickets/\d+$"))
    page.fill("textarea[name=text]", "您好，积分已为您核对，请查收。")
    page.get_by_role("button", name="发送回复").click()
    # What the agent sees once the answer is stored: it in the conversation, the new status.
    expect(page.locator("#conversation")).to_contain_text("积分已为您核对")
    expect(page.locator("#ticket-status")).to_have_text("等待会员")
    screenshot(page, "ticket")


def test_an_analyst_sees_only_masked_phones(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.ANALYST)
    page.goto(served.url + "/members")
    phones = page.locator("#member-rows td.phone").all_inner_texts()
    assert phones and all(MASKED.match(phone) for phone in phones if phone)
    page.click("#member-rows a >> nth=0")
    expect(page.locator("#profile dd.phone")).to_have_text(MASKED)
    assert "+86" not in page.content()
    screenshot(page, "member-analyst")


def test_a_store_manager_sees_only_their_store(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.STORE_MANAGER)
    page.goto(served.url + "/members")
    links = page.locator("#member-rows a").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))"
    )
    shown = {int(link.rsplit("/", 1)[1]) for link in links}
    with session_scope(served.engine) as db_session:
        mine = db_session.scalars(select(Store.id).where(Store.code == served.store_code)).one()
        stores = set(db_session.scalars(select(Member.store_id).where(Member.id.in_(shown))))
        other = db_session.scalars(
            select(Member.id).join(Store).where(Store.code == served.other_store_code)
        ).first()
    assert shown and stores == {mine}
    response = page.goto(f"{served.url}/members/{other}")
    assert response is not None and response.status == 404
    screenshot(page, "members-store-manager")


def test_the_console_switches_to_english(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.ADMIN)
    page.click("a.switch")
    expect(page.locator("header.top")).to_contain_text("Dashboard")
    expect(page.locator("canvas[data-drawn]").first).to_be_visible()
    expect(page.locator("#totals")).to_contain_text("Sent")
    screenshot(page, "dashboard-en")
    page.goto(served.url + "/campaigns")
    page.click("#campaign-rows >> text=Results >> nth=-1")
    expect(page).to_have_url(re.compile(r"/campaigns/\d+/results$"))
    expect(page.locator("main")).to_contain_text("Funnel")
    # The page draws its charts once loaded (without animation): wait for the drawn chart.
    page.wait_for_function("() => Chart.getChart(document.getElementById('funnel-chart'))")
    screenshot(page, "campaign-results-en")


def test_chinese_pages_draw_real_glyphs(served: Served, sign_in_as) -> None:  # type: ignore[no-untyped-def]
    page = sign_in_as(Role.MARKETER)
    screenshot(page, "dashboard-zh-glyphs")
    # Without a CJK font every Chinese character is drawn as the same empty box, so two
    # different characters in the page's own font come out as identical pictures.
    pictures = page.evaluate(
        """(chars) => chars.map((ch) => {
            const canvas = document.createElement('canvas');
            canvas.width = 48; canvas.height = 48;
            const context = canvas.getContext('2d');
            context.font = '32px ' + getComputedStyle(document.body).fontFamily;
            context.fillText(ch, 4, 38);
            return canvas.toDataURL();
        })""",
        ["会", "员", "活"],
    )
    assert len(set(pictures)) == 3
