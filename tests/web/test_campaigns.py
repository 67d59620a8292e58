"""The campaign wizard walks from audience to a launched campaign through the campaign
services; its progress page steers it and its results page reports it."""

from __future__ import annotations

import re

from sqlalchemy import Engine, func, select, update

from campaigns.conftest import add_members, midday_zone  # type: ignore[import-not-found]
from tidings.accounts.models import Role
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState

from .conftest import Console, csrf_of

MEMBERS = 40


def _walk_wizard(client, name: str = "会员日") -> str:  # type: ignore[no-untyped-def]
    token = csrf_of(client, "/campaigns/new/audience")
    steps = [
        ("/campaigns/new/audience", {"name": name, "rule": "points >= 0"}),
        (
            "/campaigns/new/content",
            {"template_a": "{surname}您好，会员日全场8折", "template_b": "会员日到店有礼"},
        ),
        ("/campaigns/new/schedule", {"schedule": "now", "rollout": "100", "holdout_percent": "10"}),
    ]
    response = None
    for path, data in steps:
        response = client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303, response.text
    assert response is not None
    return response.headers["location"]


def _campaign(engine: Engine) -> Campaign:
    with session_scope(engine) as db_session:
        campaign = db_session.scalars(select(Campaign)).one()
        db_session.expunge(campaign)
        return campaign


def test_the_wizard_plans_reviews_and_launches(console: Console, engine: Engine) -> None:
    add_members(engine, MEMBERS, timezone=midday_zone())
    client = console(Role.MARKETER)
    review_url = _walk_wizard(client)
    campaign = _campaign(engine)
    assert review_url == f"/campaigns/{campaign.id}/review"
    with session_scope(engine) as db_session:
        planned = db_session.scalar(
            select(func.count()).where(
                Message.campaign_id == campaign.id, Message.state == MessageState.PLANNED
            )
        )
    review = client.get(review_url).text
    shown = re.search(r'id="planned-count">([\d,]+)<', review)
    assert shown is not None and int(shown.group(1).replace(",", "")) == planned
    assert 0 < planned < MEMBERS  # a tenth is held out
    token = csrf_of(client, review_url)
    progress = client.post(f"/campaigns/{campaign.id}/launch", data={"csrf_token": token})
    assert progress.status_code == 200 and "发送中" in progress.text
    assert _campaign(engine).status is CampaignStatus.RUNNING
    results = client.get(f"/campaigns/{campaign.id}/results")
    assert results.status_code == 200 and "会员日" in results.text


def test_the_progress_page_cancels_a_campaign(console: Console, engine: Engine) -> None:
    add_members(engine, MEMBERS, timezone=midday_zone())
    client = console(Role.MARKETER)
    review_url = _walk_wizard(client)
    campaign_id = _campaign(engine).id
    token = csrf_of(client, review_url)
    client.post(f"/campaigns/{campaign_id}/launch", data={"csrf_token": token})
    page = client.post(f"/campaigns/{campaign_id}/cancel", data={"csrf_token": token}).text
    assert "已取消" in page
    assert _campaign(engine).status is CampaignStatus.CANCELLED


def test_a_wizard_step_with_a_mistake_says_so_and_creates_nothing(
    console: Console, engine: Engine
) -> None:
    client = console(Role.MARKETER)
    token = csrf_of(client, "/campaigns/new/audience")
    response = client.post(
        "/campaigns/new/audience", data={"csrf_token": token, "name": "", "rule": "points > 1"}
    )
    assert response.status_code == 422 and 'role="alert"' in response.text
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_an_analyst_cannot_start_the_wizard(console: Console) -> None:
    client = console(Role.ANALYST)
    assert client.get("/campaigns/new/audience").status_code == 403


def test_the_dashboard_counts_what_was_sent_and_shows_the_running_campaign(
    console: Console, engine: Engine
) -> None:
    add_members(engine, MEMBERS, timezone=midday_zone())
    client = console(Role.MARKETER)
    review_url = _walk_wizard(client, name="周末快闪")
    campaign_id = _campaign(engine).id
    client.post(
        f"/campaigns/{campaign_id}/launch", data={"csrf_token": csrf_of(client, review_url)}
    )
    with session_scope(engine) as db_session:
        delivered = db_session.execute(
            update(Message)
            .where(Message.state == MessageState.QUEUED)
            .values(state=MessageState.DELIVERED, cost_cents=5)
        ).rowcount
    assert delivered > 0
    page = client.get("/").text
    sent = re.search(r'data-metric="sent">([\d,]+)<', page)
    assert sent is not None and int(sent.group(1).replace(",", "")) == delivered
    assert f"¥{delivered * 5 / 100:,.2f}" in page
    assert f'href="/campaigns/{campaign_id}">周末快闪<' in page


def test_a_store_manager_does_not_see_a_review_of_every_stores_messages(
    console: Console, engine: Engine
) -> None:
    add_members(engine, MEMBERS, timezone=midday_zone())
    review_url = _walk_wizard(console(Role.MARKETER))
    assert console(Role.STORE_MANAGER, "SH01").get(review_url).status_code == 403
    analyst = console(Role.ANALYST).get(review_url).text
    assert "+86139" not in analyst and "139****" in analyst
