"""A campaign created with promote_winner sends its later rollout stages with a variant that
beats the control on orders; without a clear winner, or without the option, nothing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings import clock
from tidings.campaigns import rollout, service
from tidings.campaigns.models import Campaign
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.orders.models import Order
from tidings.tracking.models import Attribution, AttributionKind
from tracking.conftest import link_rows  # type: ignore[import-not-found]

from .conftest import add_members, message_rows, midday_zone

TEMPLATES = ("{surname}，周末水果8折", "{surname}，周末水果买一送一")


def _campaign(engine: Engine, *, promote: bool, templates: tuple[str, str] = TEMPLATES) -> int:
    add_members(engine, 400, timezone=midday_zone())
    spec = CampaignCreate(
        name="周末特惠",
        rule="consent == true",
        variants=[VariantCreate(template=template) for template in templates],
        rollout=[50, 100],
        promote_winner=promote,
        link="https://shop.example.cn/sale" if any("{link}" in t for t in templates) else None,
    )
    with session_scope(engine) as session:
        campaign = service.create(db_session=session, spec=spec)
        service.plan(db_session=session, campaign_id=campaign.id)
        service.send(db_session=session, campaign_id=campaign.id)
        return campaign.id


def _first_stage_ordered(engine: Engine, campaign_id: int, shares: dict[str, float]) -> None:
    """Delivers the first stage and credits an order to the given share of each variant."""
    now = clock.now()
    with session_scope(engine) as session:
        session.execute(
            text(
                "UPDATE messages SET state = 'delivered', attempts = 1, submitted_at = :now,"
                " delivered_at = :now WHERE campaign_id = :id AND state = 'queued'"
            ),
            {"now": now, "id": campaign_id},
        )
        rows = session.execute(
            text(
                "SELECT m.id, m.member_id, m.variant_id, v.name FROM messages m"
                " JOIN variants v ON v.id = m.variant_id"
                " WHERE m.campaign_id = :id AND m.state = 'delivered' ORDER BY m.id"
            ),
            {"id": campaign_id},
        ).all()
        for name, share in shares.items():
            mine = [row for row in rows if row[3] == name]
            for message_id, member_id, variant_id, _ in mine[: round(len(mine) * share)]:
                order = Order(
                    external_id=f"o-{message_id}",
                    member_id=member_id,
                    ordered_at=now,
                    amount_cents=8800,
                )
                session.add(order)
                session.flush()
                session.add(
                    Attribution(
                        order_id=order.id,
                        message_id=message_id,
                        campaign_id=campaign_id,
                        variant_id=variant_id,
                        member_id=member_id,
                        kind=AttributionKind.VIEW,
                        revenue_cents=8800,
                        ordered_at=now,
                    )
                )


def _advance(engine: Engine, campaign_id: int) -> tuple[str | None, list[dict[str, Any]]]:
    with session_scope(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        done = rollout.advance(session, campaign, now=clock.now())
        return done, list(campaign.rollout_report or [])


def test_a_clear_winner_takes_the_later_stages(engine: Engine) -> None:
    campaign_id = _campaign(engine, promote=True)
    before = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    moved = before.filter(pl.col("variant") == "A").height
    assert moved > 50  # about half of the second stage was planned with A
    _first_stage_ordered(engine, campaign_id, {"A": 0.04, "B": 0.4})

    done, report = _advance(engine, campaign_id)

    assert done == "released"
    promotion = report[-1]
    assert promotion["kind"] == "promotion" and promotion["winner"] == "B"
    assert promotion["verdict"].startswith("B beats A on orders, p ")
    assert promotion["messages"] == moved and promotion["kept"] == 0
    after = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    assert set(after["variant"]) == {"B"} and set(after["state"]) == {"queued"}
    assert all(line.endswith("，周末水果买一送一 拒收请回复R") for line in after["text"])
    unchanged = before.filter(pl.col("variant") == "B").select("member_id", "text")
    assert unchanged.join(after, on=["member_id", "text"], how="anti").height == 0
    first = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 0)
    assert set(first["variant"]) == {"A", "B"}  # what was sent stays as sent


def test_no_clear_winner_changes_nothing(engine: Engine) -> None:
    campaign_id = _campaign(engine, promote=True)
    before = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    _first_stage_ordered(engine, campaign_id, {"A": 0.05, "B": 0.06})

    done, report = _advance(engine, campaign_id)

    assert done == "released"
    assert [entry.get("kind") for entry in report] == [None]  # the gate check alone
    after = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    assert after["variant"].to_list() == before["variant"].to_list()
    assert after["text"].to_list() == before["text"].to_list()


def test_without_the_option_a_winner_is_not_promoted(engine: Engine) -> None:
    campaign_id = _campaign(engine, promote=False)
    before = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    _first_stage_ordered(engine, campaign_id, {"A": 0.04, "B": 0.4})

    done, report = _advance(engine, campaign_id)

    assert done == "released" and len(report) == 1
    after = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    assert after["variant"].to_list() == before["variant"].to_list()


def test_the_cli_creates_a_campaign_that_promotes_its_winner(engine: Engine, cli: Any) -> None:
    add_members(engine, 10, timezone=midday_zone())
    created = cli(
        "campaign", "create", "--name", "周末特惠", "--rule", "consent == true",
        "--template", TEMPLATES[0], "--variant", TEMPLATES[1], "--rollout", "10,100",
        "--promote-winner", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    with engine.connect() as connection:
        gates = connection.execute(text("SELECT gates FROM campaigns")).scalar_one()
    gates = gates if isinstance(gates, dict) else json.loads(gates)
    assert gates["promote_winner"] is True


@pytest.fixture
def link_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TIDINGS_SHORT_LINK_SECRET", "promote-test-secret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _stored_links(engine: Engine, campaign_id: int) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT member_id, code FROM short_links WHERE campaign_id = :id"),
            {"id": campaign_id},
        ).all()
    return {member_id: code for member_id, code in rows}


def test_promoted_messages_show_the_short_link_written_for_them(
    engine: Engine, link_secret: None
) -> None:
    campaign_id = _campaign(
        engine,
        promote=True,
        templates=("{surname}，周末水果8折 {link}", "{surname}，买一送一 {link}"),
    )
    _first_stage_ordered(engine, campaign_id, {"A": 0.04, "B": 0.4})

    done, report = _advance(engine, campaign_id)

    assert done == "released" and report[-1]["winner"] == "B" and report[-1]["messages"] > 50
    links = _stored_links(engine, campaign_id)
    after = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    assert set(after["variant"]) == {"B"}
    for member_id, line in after.select("member_id", "text").iter_rows():
        assert "买一送一" in line and f"/s/{links[member_id]}" in line


def test_a_member_whose_variant_showed_no_link_gets_the_winners_with_a_link_of_their_own(
    engine: Engine, link_secret: None
) -> None:
    campaign_id = _campaign(
        engine, promote=True, templates=("{surname}，周末水果8折", "{surname}，买一送一 {link}")
    )
    before = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    _first_stage_ordered(engine, campaign_id, {"A": 0.04, "B": 0.4})

    done, report = _advance(engine, campaign_id)

    assert done == "released"
    promotion = report[-1]
    moved = before.filter(pl.col("variant") == "A").height
    assert (promotion["winner"], promotion["messages"], promotion["kept"]) == ("B", moved, 0)
    # The stage went with the winner: each member's message shows the link written for them.
    after = message_rows(engine, campaign_id).filter(pl.col("rollout_stage") == 1)
    assert set(after["variant"]) == {"B"}
    links = link_rows(engine, campaign_id).join(after.select("member_id"), on="member_id")
    assert links.height == after.height
    shown = links.select(pl.col("text").str.contains("/s/" + pl.col("code"), literal=True).all())
    assert shown.item()
