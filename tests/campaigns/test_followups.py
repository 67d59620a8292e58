"""Follow-up steps: after their delay, to those of the step before who clicked, converted or
replied (or did not), through the simulator with a frozen clock, under caps and windows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.accounts import service as accounts
from tidings.accounts.models import Role
from tidings.app import create_app
from tidings.campaigns import followups, service
from tidings.campaigns.schemas import CampaignCreate, CouponOffer, StepCreate, VariantCreate
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.dispatch import service as dispatch
from tidings.dispatch.worker import Worker
from tidings.inbound.service import store_replies
from tidings.notifications.preference_tokens import day_number
from tidings.orders.models import Order
from tidings.providers.base import InboundReply
from tidings.reports.service import campaign_report
from tidings.tracking.credits import attribute_orders
from web.conftest import Console  # type: ignore[import-not-found]

from .conftest import add_members, inbox_phones, midday_zone

SENT = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
ZONE = midday_zone(SENT)  # members' midday when the campaign goes, and days later
PHONE_BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"
ROBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
FIRST = "{surname}，周末鲜果8折 {link}"
REMINDER = "{surname}，鲜果优惠明天结束"


@pytest.fixture(autouse=True)
def world(quick_simulator: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A quick simulator, the brand's short links, and the clock frozen at the send."""
    # Receipts come at once: under a frozen clock a later one would never come due.
    monkeypatch.setenv("TIDINGS_SIMULATOR_RECEIPT_DELAY", "0-0")
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", "https://t.example.cn")
    monkeypatch.setenv("TIDINGS_SHORT_LINK_SECRET", "follow-up-tests")
    monkeypatch.setenv("TIDINGS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    with clock.frozen(SENT):
        yield quick_simulator
    get_settings.cache_clear()


def sent_campaign(engine: Engine, members: int, steps: list[StepCreate], **fields: object) -> int:
    """A campaign with a link for `members` new members (or those there are), planned, sent
    and delivered."""
    if members:
        add_members(engine, members, timezone=ZONE)
    values: dict[str, object] = {
        "name": "周末鲜果",
        "rule": "consent == true",
        "variants": [VariantCreate(template=FIRST)],
        "link": "https://shop.example.com/fruit",
        "steps": steps,
    }
    values.update(fields)
    with session_scope(engine) as session:
        campaign = service.create(db_session=session, spec=CampaignCreate(**values))  # type: ignore[arg-type]
        service.plan(db_session=session, campaign_id=campaign.id)
        service.send(db_session=session, campaign_id=campaign.id)
    run_worker(engine)
    return campaign.id


def run_worker(engine: Engine) -> None:
    asyncio.run(Worker(engine, settings=get_settings()).run(once=True))


def later(engine: Engine, delta: timedelta) -> None:
    """Moves the frozen clock on by `delta` and lets a worker do what has come due."""
    with clock.frozen(SENT + delta):
        run_worker(engine)


def step_texts(engine: Engine, campaign_id: int, step: int) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT member_id, text FROM messages WHERE campaign_id = :id AND step = :step"
                " AND state = 'delivered'"
            ),
            {"id": campaign_id, "step": step},
        ).all()
    return {int(member): str(body) for member, body in rows}


def phones(ids: range | list[int]) -> set[str]:
    return {f"+86139{i:08d}" for i in ids}


def click(engine: Engine, campaign_id: int, members: dict[int, str]) -> None:
    """Each member's own short link opened by the given browser (or robot)."""
    with engine.connect() as connection:
        codes = dict(
            connection.execute(
                text("SELECT member_id, code FROM short_links WHERE campaign_id = :id"),
                {"id": campaign_id},
            ).all()
        )
    with TestClient(create_app(engine), follow_redirects=False) as client:
        for member, agent in members.items():
            answer = client.get(f"/s/{codes[member]}", headers={"User-Agent": agent})
            assert answer.status_code == 302


def test_a_follow_up_reaches_only_those_who_did_not_click(engine: Engine, world: Path) -> None:
    step = StepCreate(after="2d", reaction="not-clicked", template=REMINDER)
    campaign = sent_campaign(engine, 12, [step])
    assert set(step_texts(engine, campaign, 0)) == set(range(1, 13))
    click(engine, campaign, {1: PHONE_BROWSER, 2: PHONE_BROWSER, 3: PHONE_BROWSER, 4: ROBOT})
    later(engine, timedelta(days=1))  # not due yet: nobody gets a second message
    assert set(inbox_phones(world).values()) == {1}
    later(engine, timedelta(days=2, hours=1))
    reminded = step_texts(engine, campaign, 1)
    # A robot's preview is not a person's click: member 4 is reminded.
    assert set(reminded) == set(range(4, 13))
    assert all("鲜果优惠明天结束" in body for body in reminded.values())
    received = inbox_phones(world)
    assert {p for p, n in received.items() if n == 1} == phones([1, 2, 3])
    assert {p for p, n in received.items() if n == 2} == phones(range(4, 13))
    later(engine, timedelta(days=4))  # a step goes once
    assert sum(inbox_phones(world).values()) == 12 + 9
    with session_scope(engine) as session:
        # Only now, with its one step done, may the campaign complete.
        assert dispatch.complete_finished(db_session=session) == [campaign]
        listed = followups.list_steps(db_session=session, campaign_id=campaign)
    assert [(s["when"], s["audience"]) for s in listed] == [
        ("2d after step 0", "recipients of step 0, not-clicked")
    ]
    assert listed[0]["plan"]["planned"] == 9
    with clock.frozen(SENT + timedelta(days=4)), session_scope(engine) as session:
        report = campaign_report(db_session=session, campaign_id=campaign)
    steps = [(r["step"], r["sent"], r["delivered"], r["clicked"]) for r in report["by_step"]]
    assert steps == [(0, 12, 12, 3), (1, 9, 9, 0)]
    assert report["funnel"]["sent"] == 21
    with clock.frozen(SENT + timedelta(days=4)):
        page = Console(engine)(Role.ANALYST).get(f"/campaigns/{campaign}/results").text
    shown = page[page.index('id="by-step"') :]
    assert "<td>0</td><td>12</td>" in shown and "<td>1</td><td>9</td>" in shown


def test_a_follow_up_to_those_who_replied_and_none_to_converters(
    engine: Engine, world: Path
) -> None:
    thanks = StepCreate(after="1d", reaction="replied", template="{surname}，感谢回复，已为您登记")
    nudge = StepCreate(after="1d", reaction="not-converted", template=REMINDER)
    campaign = sent_campaign(engine, 10, [thanks, nudge])
    with session_scope(engine) as session:
        replies = [
            InboundReply("simulator", phone, "好的，周末去", SENT + timedelta(hours=1))
            for phone in sorted(phones([2, 5]))
        ]
        store_replies(db_session=session, replies=replies, now=SENT + timedelta(hours=1))
    later(engine, timedelta(days=1, hours=1))
    assert set(step_texts(engine, campaign, 1)) == {2, 5}
    with session_scope(engine) as session:
        for member in (5, 6, 7):  # they shopped the day after: the first message earned it
            session.add(
                Order(
                    external_id=f"POS{member}",
                    member_id=member,
                    ordered_at=SENT + timedelta(hours=20),
                    amount_cents=8_800,
                )
            )
    with clock.frozen(SENT + timedelta(hours=21)), session_scope(engine) as session:
        assert attribute_orders(db_session=session).credited == 3
    # Step 2 follows step 1 a day later, to step 1's recipients who did not buy.
    later(engine, timedelta(days=2))  # not yet
    assert step_texts(engine, campaign, 2) == {}
    later(engine, timedelta(days=2, hours=2))
    assert set(step_texts(engine, campaign, 2)) == {2}


def test_a_step_keeps_caps_and_send_windows(
    engine: Engine, world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CAPS", "default=2/7d")
    get_settings.cache_clear()
    add_members(engine, 4, timezone=ZONE, first_id=101)  # earlier messages count for caps
    with session_scope(engine) as session:
        other = service.create(
            db_session=session,
            spec=CampaignCreate(
                name="会员日",
                rule="member_id == 101",
                variants=[VariantCreate(template="{surname}，会员日双倍积分")],
            ),
        )
        service.plan(db_session=session, campaign_id=other.id)
        service.send(db_session=session, campaign_id=other.id)
    run_worker(engine)
    step = StepCreate(after="7h", reaction="all", template=REMINDER)
    campaign = sent_campaign(engine, 0, [step], rule="member_id >= 101")
    # 7 hours after midday is 19:00; the step is planned at 22:00 local, outside the window.
    later(engine, timedelta(hours=10))
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT member_id, state, skip_reason, send_at FROM messages"
                " WHERE campaign_id = :id AND step = 1 ORDER BY member_id"
            ),
            {"id": campaign},
        ).all()
    zone = ZoneInfo(ZONE)
    send_at = {int(r[0]): as_utc(r[3]) for r in rows}
    assert [str(r[1]) for r in rows] == ["queued"] * 4
    # Member 101 had two messages this week (the cap): theirs waits until the week is over.
    assert send_at[101] >= SENT + timedelta(days=7)
    # The others' goes at the next morning's window, never at night.
    mornings = {send_at[m].astimezone(zone).replace(tzinfo=None) for m in (102, 103, 104)}
    next_morning = (SENT.astimezone(zone) + timedelta(days=1)).replace(hour=8, tzinfo=None)
    assert mornings == {next_morning}
    assert set(inbox_phones(world).values()) == {1, 2}
    assert step_texts(engine, campaign, 1) == {}
    later(engine, timedelta(hours=20))
    assert set(step_texts(engine, campaign, 1)) == {102, 103, 104}


def as_utc(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_countdown_sequence_goes_on_its_days_to_its_own_audiences(
    engine: Engine, world: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CAPS", "default=10/30d")
    add_members(engine, 3, timezone=ZONE, tier="gold")
    add_members(engine, 5, timezone=ZONE, first_id=4)
    made = cli(
        "campaign", "create", "--name", "圣诞倒计时", "--rule", 'tier == "gold"',
        "--template", "{surname}，金卡会员圣诞专场抢先看",
        "--countdown", "2026-12-09",
        "--countdown-step", "0d 08:00:not-converted:{surname}，今天最后一天",
        "--countdown-step", "-3d 10:00:consent == true:{surname}，三天后圣诞大促",
        "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    campaign = int(json.loads(made.stdout)["id"])
    listed = json.loads(cli("campaign", "steps", str(campaign), "--json").stdout)
    assert [s["when"] for s in listed] == [
        "at 2026-12-06 10:00 (Asia/Shanghai)",
        "at 2026-12-09 08:00 (Asia/Shanghai)",
    ]
    with session_scope(engine) as session:  # the first send, seven days before, to the best
        service.plan(db_session=session, campaign_id=campaign)
        service.send(db_session=session, campaign_id=campaign)
    run_worker(engine)
    assert set(step_texts(engine, campaign, 0)) == {1, 2, 3}
    later(engine, timedelta(days=3))  # 2026-12-05: nothing due
    assert step_texts(engine, campaign, 1) == {}
    later(engine, timedelta(days=3, hours=23))  # 2026-12-06 10:00 in Shanghai
    assert set(step_texts(engine, campaign, 1)) == set(range(1, 9))
    with session_scope(engine) as session:
        session.add(
            Order(
                external_id="POS4",
                member_id=4,
                ordered_at=SENT + timedelta(days=5),
                amount_cents=19_900,
            )
        )
    with clock.frozen(SENT + timedelta(days=5, hours=1)), session_scope(engine) as session:
        assert attribute_orders(db_session=session).credited == 1
    later(engine, timedelta(days=6, hours=21))  # 2026-12-09 08:00 in Shanghai
    last = step_texts(engine, campaign, 2)
    assert set(last) == set(range(1, 9)) - {4}  # member 4 has bought already
    assert all("今天最后一天" in body for body in last.values())


def test_the_api_takes_steps_and_refuses_bad_ones_whole(engine: Engine) -> None:
    with session_scope(engine) as session:
        _, key = accounts.create(db_session=session, name="console")
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    body = {
        "name": "周末鲜果",
        "rule": "consent == true",
        "variants": [{"template": "{surname}，周末鲜果8折"}],
        "steps": [{"after": "2d", "reaction": "not-clicked", "template": REMINDER}],
    }
    bad = [
        ({"after": "2 weeks", "template": REMINDER}, "not like 2d, 12h or 30m"),
        ({"after": "2d", "reaction": "ignored", "template": REMINDER}, "not a reaction"),
        ({"after": "2d", "template": "{surname}，{link}"}, "step 1"),
        ({"at": "2026-11-01T10:00:00+08:00", "template": REMINDER}, "has passed"),
    ]
    for step, says in bad:
        answer = client.post("/api/v1/campaigns", json={**body, "steps": [step]})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert says in answer.json()["detail"]
    both = {"after": "2d", "at": "2026-12-24T10:00:00+08:00", "template": REMINDER}
    assert client.post("/api/v1/campaigns", json={**body, "steps": [both]}).status_code == 422
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM campaigns")).scalar_one() == 0
    made = client.post("/api/v1/campaigns", json=body).json()["id"]
    steps = client.get(f"/api/v1/campaigns/{made}/steps").json()
    assert [(s["number"], s["when"], s["planned_at"]) for s in steps] == [
        (1, "2d after step 0", None)
    ]
    assert client.get("/api/v1/campaigns/999/steps").status_code == 404


def test_a_reminder_with_a_coupon_gives_each_non_clicker_a_working_one(
    engine: Engine, world: Path
) -> None:
    step = StepCreate(
        after="2d",
        reaction="not-clicked",
        template="{surname}，送您10元券{coupon}，再看看 {link} 消息偏好 {preference_link}",
    )
    offer = CouponOffer(value_cents=1000, valid_days=7)
    campaign = sent_campaign(engine, 6, [step], coupon_offer=offer)
    click(engine, campaign, {1: PHONE_BROWSER, 2: PHONE_BROWSER})
    with engine.connect() as connection:
        first_links = dict(
            connection.execute(
                text("SELECT member_id, code FROM short_links WHERE campaign_id = :id"),
                {"id": campaign},
            ).all()
        )
    later(engine, timedelta(days=2, hours=1))
    reminded = step_texts(engine, campaign, 1)
    assert set(reminded) == {3, 4, 5, 6}
    with engine.connect() as connection:
        held = dict(
            connection.execute(
                text("SELECT member_id, code FROM coupons WHERE campaign_id = :id"),
                {"id": campaign},
            ).all()
        )
        links_now = dict(
            connection.execute(
                text("SELECT member_id, code FROM short_links WHERE campaign_id = :id"),
                {"id": campaign},
            ).all()
        )
    # The first send showed no coupon: only the reminded hold one, each shown in their text.
    assert set(held) == {3, 4, 5, 6}
    assert all(held[m] in body for m, body in reminded.items())
    # Each also shows their own preference page link, made the day the step went.
    day = day_number(SENT + timedelta(days=2, hours=1))
    assert all(f"/p/{m}{day}" in body for m, body in reminded.items())
    # Each keeps the link of the first send; the campaign's other links are untouched.
    assert links_now == first_links
    assert all(f"/s/{first_links[m]}" in body for m, body in reminded.items())

    with session_scope(engine) as session:
        _, key = accounts.create(db_session=session, name="till", scopes=["coupons:redeem"])
    till_app = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    with clock.frozen(SENT + timedelta(days=3)), till_app as till:  # the day after the reminder
        order = {"order_id": "POS-1", "amount_cents": 8800, "member_id": 4}
        redeemed = till.post(f"/api/v1/coupons/{held[4]}/redeem", json=order)
        assert redeemed.status_code == 200, redeemed.text
        assert redeemed.json()["status"] == "redeemed"
        again = till.post(f"/api/v1/coupons/{held[4]}/redeem", json={**order, "order_id": "P2"})
        assert again.status_code >= 400
