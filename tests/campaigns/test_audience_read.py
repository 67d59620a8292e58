"""A plan reads only the audience fields its rule and templates use, and writes every column."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from tidings import scans
from tidings.campaigns import service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.db import session_scope
from tidings.segments.snapshot import invalidate, snapshot

from .conftest import add_members, message_rows, midday_zone


def _plan(engine: Engine, rule: str, template: str, now: datetime | None = None) -> int:
    spec = CampaignCreate(name="周末", rule=rule, variants=[VariantCreate(template=template)])
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
    with session_scope(engine) as session:
        service.plan(db_session=session, campaign_id=campaign_id, now=now)
    return campaign_id


def test_the_rule_and_the_templates_get_the_fields_they_name(engine: Engine) -> None:
    add_members(engine, 6, timezone=midday_zone())
    invalidate(engine)
    campaign_id = _plan(engine, 'points >= 40 and city == "上海"', "{store}见，{points}积分")
    rows = message_rows(engine, campaign_id)
    assert rows["member_id"].to_list() == [4, 5, 6]
    assert rows["state"].to_list() == ["planned"] * 3
    assert "徐汇店见，40积分" in rows["text"][0]


def test_a_narrow_snapshot_is_read_again_when_every_field_is_asked_for(engine: Engine) -> None:
    add_members(engine, 3, timezone=midday_zone())
    invalidate(engine)
    _plan(engine, "consent == true", "{name}您好")
    assert "points" not in snapshot(engine, fields={"member_id", "name"}).columns
    full = snapshot(engine)
    assert full["points"].to_list() == [10, 20, 30]


def test_skipped_and_planned_rows_carry_their_times(engine: Engine) -> None:
    add_members(engine, 4, consent_every=2, timezone=midday_zone())
    now = datetime.now(UTC).replace(microsecond=0)
    campaign_id = _plan(engine, "consent == true or consent == false", "{name}您好", now=now)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT state, final_at IS NOT NULL, created_at, updated_at, attempts"
                " FROM messages WHERE campaign_id = :id ORDER BY member_id"
            ),
            {"id": campaign_id},
        ).all()
    assert [(state, final) for state, final, *_ in rows] == [
        ("planned", False),
        ("skipped", True),
        ("planned", False),
        ("skipped", True),
    ]
    stamps = {str(created)[:19] for _, _, created, _, _ in rows}
    stamps |= {str(updated)[:19] for _, _, _, updated, _ in rows}
    assert stamps == {now.strftime("%Y-%m-%d %H:%M:%S")}
    assert {attempts for *_, attempts in rows} == {0}


@pytest.mark.parametrize("in_children", [False, True], ids=["read-here", "read-in-children"])
def test_a_plan_sees_earlier_messages_however_history_is_read(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, in_children: bool
) -> None:
    """On a big SQLite store child processes scan the messages for caps and cool-downs; a
    second coupon campaign right after the first waits out the 30-day cool-down either way."""
    if in_children:
        monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 0)
    add_members(sqlite_engine, 4, timezone=midday_zone())
    invalidate(sqlite_engine)
    now = datetime.now(UTC).replace(microsecond=0)
    sends = []
    for name in ("周末", "周中"):
        spec = CampaignCreate(
            name=name,
            rule="consent == true",
            variants=[VariantCreate(template="{name}您好")],
            offer_type="coupon",
        )
        with session_scope(sqlite_engine) as session:
            campaign_id = service.create(db_session=session, spec=spec).id
        with session_scope(sqlite_engine) as session:
            service.plan(db_session=session, campaign_id=campaign_id, now=now)
        rows = message_rows(sqlite_engine, campaign_id)
        assert rows["state"].to_list() == ["planned"] * 4
        sends.append(rows["send_at"].str.to_datetime(time_unit="us"))
    assert (sends[1] - sends[0]).dt.total_days().to_list() == [30] * 4
