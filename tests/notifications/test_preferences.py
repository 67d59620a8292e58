"""Preferences: a member declines one kind of marketing by a reply or on their page, the
choice is in the consent ledger, and the next campaign of that kind leaves them out (with
its reason) while other kinds still reach them."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from campaigns.conftest import (  # type: ignore[import-not-found]
    add_members,
    message_rows,
    midday_zone,
    quick_simulator,  # noqa: F401  (a fixture)
)
from tidings import clock
from tidings.app import create_app
from tidings.campaigns import service as campaigns
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.campaigns.service import CampaignError
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.inbound import service as inbound
from tidings.notifications import preference_tokens, preferences
from tidings.providers.base import InboundReply
from tidings.segments.snapshot import invalidate


@pytest.fixture(autouse=True)
def fresh_snapshots() -> None:
    """Each test writes a new base: forget the audience kept in memory by an earlier one."""
    invalidate()


def _planned(engine: Engine, category: str | None) -> pl.DataFrame:
    spec = CampaignCreate(
        name=f"周末{category}",
        rule="consent == true",
        category=category,
        variants=[VariantCreate(template="{surname}，本周末水果特价")],
    )
    with session_scope(engine) as session:
        campaign = campaigns.create(db_session=session, spec=spec).id
        campaigns.plan(db_session=session, campaign_id=campaign)
    return message_rows(engine, campaign).select("member_id", "state", "skip_reason")


def _reply(engine: Engine, settings: Settings, phone: str, said: str) -> None:
    now = clock.now()
    with session_scope(engine) as session:
        reply = InboundReply("simulator", phone, said, now, provider_message_id=f"{said}{now}")
        inbound.store_replies(db_session=session, replies=[reply], now=now, settings=settings)


def test_a_reply_declines_one_kind_until_taken_back(engine: Engine, settings: Settings) -> None:
    first, *_ = add_members(engine, 3, timezone=midday_zone())
    phone = f"+86139{first:08d}"
    _reply(engine, settings, phone, "TD促销")

    promotions = _planned(engine, "promotions")
    skipped = promotions.filter(pl.col("state") == "skipped")
    assert skipped.rows() == [(first, "skipped", "preference:promotions")]
    assert promotions.filter(pl.col("state") == "planned").height == 2
    assert _planned(engine, "tips").filter(pl.col("state") == "planned").height == 3
    with engine.connect() as connection:
        events = connection.execute(
            text("SELECT topic, kind, source FROM consent_events WHERE source = 'sms_reply'")
        ).all()
        answer = connection.execute(
            text("SELECT text FROM messages WHERE kind IN ('reply', 'transactional')")
        ).scalar_one()
        suppressed = connection.execute(text("SELECT COUNT(*) FROM suppressions")).scalar_one()
    assert [tuple(e) for e in events] == [("promotions", "opt_out", "sms_reply")]
    assert "促销" in answer and "DY促销" in answer
    assert suppressed == 0  # a bare TD stops everything; TD促销 only promotions

    _reply(engine, settings, phone, "dy 促销")
    again = _planned(engine, "promotions")
    assert again.filter(pl.col("state") == "planned").height == 3


def test_a_campaign_of_an_unknown_kind_is_refused(engine: Engine) -> None:
    with pytest.raises(CampaignError, match="promotions"), session_scope(engine) as session:
        spec = CampaignCreate(
            name="x",
            rule="consent == true",
            category="spam",
            variants=[VariantCreate(template="x")],
        )
        campaigns.create(db_session=session, spec=spec)


def test_the_page_changes_choices_only_with_its_own_form(
    engine: Engine, client: TestClient, settings: Settings
) -> None:
    first, *_ = add_members(engine, 2, timezone=midday_zone())
    link = preferences.preference_link(first, settings)
    path = urlsplit(link).path
    page = client.get(path)
    assert page.status_code == 200
    assert page.text.count('type="checkbox"') == 4 and page.text.count("checked") == 4
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token is not None

    keep = {"receive": ["new_arrivals", "tips", "surveys"]}
    forged = client.post(path, data={**keep, "form_token": "forged"})
    assert forged.status_code == 403
    other = preferences.form_token(first + 1, settings)
    assert client.post(path, data={**keep, "form_token": other}).status_code == 403
    assert client.get("/p/not-a-token").status_code == 403
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT COUNT(*) FROM consent_events WHERE topic != 'marketing'")
            ).scalar_one()
            == 0
        )

    saved = client.post(path, data={**keep, "form_token": token.group(1)})
    assert saved.status_code == 200 and "已保存" in saved.text
    assert saved.text.count("checked") == 3
    promotions = _planned(engine, "promotions")
    assert promotions.filter(pl.col("state") == "skipped")["skip_reason"].to_list() == [
        "preference:promotions"
    ]
    with engine.connect() as connection:
        source = connection.execute(
            text("SELECT source FROM consent_events WHERE topic = 'promotions'")
        ).scalar_one()
    assert source == "preference_page"


PREFERENCE_LINK = re.compile(r"https://t\.example\.cn/p/[0-9A-Za-z_-]+")


def test_a_member_declines_from_the_link_their_message_carried(
    engine: Engine,
    quick_simulator: Path,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Receipts come at once: under a frozen clock a later one would never come due.
    monkeypatch.setenv("TIDINGS_SIMULATOR_RECEIPT_DELAY", "0-0")
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", "https://t.example.cn")
    monkeypatch.setenv("TIDINGS_PREFERENCE_SECRET", "page-link-tests")
    get_settings.cache_clear()
    sent = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    first, second, third = add_members(engine, 3, timezone=midday_zone(sent))
    with clock.frozen(sent):
        spec = CampaignCreate(
            name="本周贴士",
            rule="consent == true",
            category="tips",
            variants=[
                VariantCreate(
                    template="{surname}，冬季储存鲜果小贴士。选择您想收的消息：{preference_link}"
                )
            ],
        )
        with session_scope(engine) as session:
            campaign = campaigns.create(db_session=session, spec=spec).id
            campaigns.plan(db_session=session, campaign_id=campaign)
            campaigns.send(db_session=session, campaign_id=campaign)
        asyncio.run(Worker(engine, settings=get_settings()).run(once=True))
    delivered = {
        str(line["phone"]): str(line["text"])
        for line in map(json.loads, quick_simulator.read_text().splitlines())
    }
    assert len(delivered) == 3
    links = {phone: PREFERENCE_LINK.search(body) for phone, body in delivered.items()}
    assert all(links.values()) and len({m[0] for m in links.values() if m}) == 3
    mine = links[f"+86139{first:08d}"]
    assert mine is not None
    # The counted length is the length of the text sent, link included.
    rows = message_rows(engine, campaign).filter(pl.col("member_id") == first)
    assert mine[0] in rows["text"][0]

    with clock.frozen(sent + timedelta(days=1)), TestClient(create_app(engine)) as client:
        path = urlsplit(mine[0]).path
        page = client.get(path)
        assert page.status_code == 200 and page.text.count("checked") == 4
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token is not None
        keep = ["new_arrivals", "tips", "surveys"]
        saved = client.post(path, data={"receive": keep, "form_token": token.group(1)})
        assert saved.status_code == 200 and saved.text.count("checked") == 3
        promotions = _planned(engine, "promotions")
    assert promotions.filter(pl.col("state") == "skipped").rows() == [
        (first, "skipped", "preference:promotions")
    ]
    assert set(promotions.filter(pl.col("state") == "planned")["member_id"]) == {second, third}
    get_settings.cache_clear()


def test_a_link_is_refused_once_forged_or_past_its_days(engine: Engine, settings: Settings) -> None:
    first, *_ = add_members(engine, 1, timezone=midday_zone())
    made = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    token = urlsplit(preferences.preference_link(first, settings, now=made)).path[3:]
    assert len(token) <= len(str(first)) + 13  # id, day and signature: short for an SMS
    with clock.frozen(made + timedelta(days=settings.preference_link_days)):
        assert preferences.member_of(token, settings) == first
    late = made + timedelta(days=settings.preference_link_days + 1)
    with clock.frozen(late), pytest.raises(preferences.PreferenceError, match="expired"):
        preferences.member_of(token, settings)
    other = str(first + 1) + token[len(str(first)) :]
    with pytest.raises(preferences.PreferenceError, match="not valid"):
        preferences.member_of(other, settings)
    wrong_key = settings.model_copy(update={"preference_secret": "another"})
    with pytest.raises(preferences.PreferenceError, match="not valid"):
        preferences.member_of(token, wrong_key)


def test_a_notice_to_a_member_carries_their_link(
    engine: Engine, client: TestClient, member: int
) -> None:
    notice = {
        "idempotency_key": "store-moved-1",
        "template": "{surname}，门店已迁至新址。消息偏好：{preference_link}",
        "member_id": member,
    }
    with clock.frozen(datetime(2026, 12, 2, 6, 0, tzinfo=UTC)):
        sent = client.post("/api/v1/messages", json=notice)
    assert sent.status_code == 201, sent.text
    shown = client.get(f"/api/v1/messages/{sent.json()['id']}").json()
    token = urlsplit(shown["text"].split("：")[1]).path.removeprefix("/p/")
    with clock.frozen(datetime(2026, 12, 3, 6, 0, tzinfo=UTC)):
        assert preferences.member_of(token, get_settings()) == member
    to_a_phone = {**notice, "idempotency_key": "store-moved-2", "phone": "13800000002"}
    del to_a_phone["member_id"]
    refused = client.post("/api/v1/messages", json=to_a_phone)
    assert refused.status_code == 422 and "preference_link" in refused.text


def test_a_link_never_spells_a_listed_word_even_split_by_a_dash() -> None:
    # Members whose first signature reads LSD once - and _ are skipped, as the content check
    # reads it (l_sD, L-Sd), and one whose reads it outright (lSD).
    members = [195_558, 536_681, 790_300, 2_524, 1, 2]
    plain = [preference_tokens.token_for(m, secret="change-me", day=20_789) for m in members]
    assert sum("lsd" in t.lower().replace("-", "").replace("_", "") for t in plain) >= 3
    frame = pl.DataFrame({"member_id": members})
    made = frame.select(
        preference_tokens.token_expr(
            pl.col("member_id"), secret="change-me", day=20_789, avoid=["LSD"]
        )
    ).to_series()
    for member, token in zip(members, made, strict=True):
        assert "lsd" not in token.lower().replace("-", "").replace("_", "")
        assert token == preference_tokens.token_for(
            member, secret="change-me", day=20_789, avoid=["LSD"]
        )
        assert preference_tokens.read_token(token, secret="change-me") == (member, 20_789)
