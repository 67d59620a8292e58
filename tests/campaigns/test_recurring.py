"""Recurring campaigns: each occurrence of the schedule makes one run (a campaign of its own
with a fresh audience), sent through the simulator; never two for one occurrence, even when
the worker restarts; schedules that cannot be read are refused with what to write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.app import create_app
from tidings.campaigns import recurring, service
from tidings.campaigns.recurrence import RecurrenceError, parse_recurrence
from tidings.campaigns.schemas import CampaignCreate, StepCreate, VariantCreate
from tidings.campaigns.spec import CampaignError
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.dispatch.service import CampaignStateError
from tidings.dispatch.worker import Worker
from tidings.reports.service import campaign_report

from .conftest import add_members, inbox_phones, midday_zone

START = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)  # Monday 10:30 in Shanghai
ZONE = midday_zone(START)  # members' late morning at 02:30 UTC, every day
WEDNESDAYS = ["2026-12-02", "2026-12-09", "2026-12-16", "2026-12-23", "2026-12-30"]


@pytest.fixture(autouse=True)
def world(quick_simulator: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A quick simulator whose receipts come at once (the clock is frozen)."""
    monkeypatch.setenv("TIDINGS_SIMULATOR_RECEIPT_DELAY", "0-0")
    monkeypatch.setenv("TIDINGS_CAPS", "default=10/30d")
    get_settings.cache_clear()
    yield quick_simulator
    get_settings.cache_clear()


def run_worker(engine: Engine, at: datetime) -> None:
    """A worker started afresh at `at` (as after a restart), run until nothing is left."""
    with clock.frozen(at):
        asyncio.run(Worker(engine, settings=get_settings()).run(once=True))


def create(engine: Engine, every: str, template: str) -> int:
    with clock.frozen(START), session_scope(engine) as session:
        spec = CampaignCreate(
            name="时令水果",
            rule="consent == true",
            variants=[VariantCreate(template=template)],
            every=every,
        )
        return service.create(db_session=session, spec=spec).id


def runs(engine: Engine, campaign_id: int) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        return recurring.runs(db_session=session, campaign_id=campaign_id)


def test_a_weekly_campaign_runs_once_each_wednesday_of_a_month(engine: Engine, world: Path) -> None:
    add_members(engine, 5, timezone=ZONE)
    weekly = create(engine, "every wed 10:00", "{surname}，本周时令水果：砂糖橘上市")
    for day in range(32):  # each day of December, twice: the second worker is a restart
        moment = START + timedelta(days=day)
        run_worker(engine, moment)
        run_worker(engine, moment + timedelta(minutes=5))
        if day == 4:  # a member who joined after the first run is in the next one
            add_members(engine, 1, timezone=ZONE, first_id=6)
    made = sorted(runs(engine, weekly), key=lambda r: r["occurrence_at"])
    assert [r["name"] for r in made] == [f"时令水果 {day}" for day in WEDNESDAYS]
    assert [r["messages"] for r in made] == [5, 6, 6, 6, 6]
    assert inbox_phones(world)["+8613900000001"] == 5
    assert inbox_phones(world)["+8613900000006"] == 4
    with engine.connect() as connection:
        own = connection.execute(
            text("SELECT COUNT(*) FROM messages WHERE campaign_id = :id"), {"id": weekly}
        ).scalar_one()
    assert own == 0  # the recurring campaign itself sends nothing


def test_a_monthly_statement_shows_each_members_points(engine: Engine, world: Path) -> None:
    add_members(engine, 3, timezone=ZONE)
    monthly = create(engine, "monthly 1 09:00", "{surname}，您的积分余额{points_balance}分")
    for day in (0, 1, 2, 31, 32):  # Nov 30, Dec 1, Dec 2, Dec 31, Jan 1
        run_worker(engine, START + timedelta(days=day))
    made = sorted(runs(engine, monthly), key=lambda r: r["occurrence_at"])
    assert [r["name"] for r in made] == ["时令水果 2026-12-01", "时令水果 2027-01-01"]
    with engine.connect() as connection:
        texts = connection.execute(
            text("SELECT member_id, text FROM messages WHERE campaign_id = :id ORDER BY member_id"),
            {"id": made[0]["id"]},
        ).all()
    assert [(m, "余额" + str(m * 10) + "分" in body) for m, body in texts] == [
        (1, True),
        (2, True),
        (3, True),
    ]


def test_a_recurring_campaign_is_not_planned_itself(engine: Engine) -> None:
    weekly = create(engine, "every mon,thu 09:30", "{surname}，本周特价")
    with session_scope(engine) as session, pytest.raises(CampaignStateError, match="runs"):
        service.plan(db_session=session, campaign_id=weekly)


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("every blursday 10:00", "'blursday' is not a day"),
        ("every wed 25:00", "'25:00' is not a time"),
        ("monthly 31 09:00", "1 to 28 or last"),
        ("sometimes", "'sometimes' is not a day"),
        ("every", "is not one of"),
    ],
)
def test_a_schedule_that_cannot_be_read_says_what_to_write(schedule: str, says: str) -> None:
    with pytest.raises(RecurrenceError, match=says):
        parse_recurrence(schedule)


def test_the_command_refuses_a_bad_schedule_and_lists_runs(cli: Any, engine: Engine) -> None:
    refused = cli(
        "campaign", "create", "--name", "周报", "--rule", "consent == true",
        "--template", "{surname}，本周特价", "--every", "every wed 10",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "'10' is not a time like 10:00" in refused.output
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM campaigns")).scalar_one() == 0
    made = cli(
        "campaign", "create", "--name", "周报", "--rule", "consent == true",
        "--template", "{surname}，本周特价", "--every", "wed 10:00", "--json",
    )  # fmt: skip
    campaign = json.loads(made.stdout)["id"]
    listed = cli("campaign", "runs", str(campaign), "--json")
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])


def test_each_weekly_run_reminds_only_its_own_non_clickers(
    engine: Engine, world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", "https://t.example.cn")
    monkeypatch.setenv("TIDINGS_SHORT_LINK_SECRET", "recurring-tests")
    get_settings.cache_clear()
    add_members(engine, 4, timezone=ZONE)
    with clock.frozen(START), session_scope(engine) as session:
        spec = CampaignCreate(
            name="时令水果",
            rule="consent == true",
            variants=[VariantCreate(template="{surname}，本周时令水果 {link}")],
            link="https://shop.example.com/fruit",
            steps=[
                StepCreate(after="2d", reaction="not-clicked", template="{surname}，特价明天结束")
            ],
            every="every wed 10:00",
        )
        weekly = service.create(db_session=session, spec=spec).id
    for day in range(34):  # each day of December, and the last run's reminder in January
        moment = START + timedelta(days=day)
        run_worker(engine, moment)
        made = {r["occurrence_at"]: r["id"] for r in runs(engine, weekly)}
        if moment.weekday() == 2:  # the Wednesday's run went: member `week` clicks it
            run = max(made.items())[1]
            clicker = len(made)  # member 1 the first week, member 2 the second, ...
            with clock.frozen(moment + timedelta(hours=1)):
                _click(engine, run, member=1 + (clicker - 1) % 4)
    made = sorted(runs(engine, weekly), key=lambda r: r["occurrence_at"])
    assert len(made) == 5
    for week, run in enumerate(made):
        clicked = 1 + week % 4
        steps = run["steps"]
        assert [(s["number"], s["plan"]["planned"]) for s in steps] == [(1, 3)], run
        with engine.connect() as connection:
            reminded = connection.execute(
                text(
                    "SELECT member_id FROM messages WHERE campaign_id = :id AND step = 1"
                    " AND state = 'delivered' ORDER BY member_id"
                ),
                {"id": run["id"]},
            ).scalars()
            assert list(reminded) == [m for m in (1, 2, 3, 4) if m != clicked]
        with clock.frozen(START + timedelta(days=34)), session_scope(engine) as session:
            report = campaign_report(db_session=session, campaign_id=run["id"])
        by_step = [(r["step"], r["sent"], r["clicked"]) for r in report["by_step"]]
        assert by_step == [(0, 4, 1), (1, 3, 0)]
    with engine.connect() as connection:
        own = connection.execute(
            text(
                "SELECT COUNT(*) FROM campaign_steps WHERE campaign_id = :id"
                " AND planned_at IS NOT NULL"
            ),
            {"id": weekly},
        ).scalar_one()
    assert own == 0  # the recurring campaign's own steps are only the pattern


def test_a_recurring_campaign_refuses_a_step_at_a_set_moment(engine: Engine) -> None:
    spec = CampaignCreate(
        name="周报",
        rule="consent == true",
        variants=[VariantCreate(template="{surname}，本周特价")],
        steps=[StepCreate(at=START + timedelta(days=3), template="{surname}，最后一天")],
        every="every wed 10:00",
    )
    refused = pytest.raises(CampaignError, match="every run")
    with clock.frozen(START), session_scope(engine) as session, refused:
        service.create(db_session=session, spec=spec)


def _click(engine: Engine, campaign_id: int, *, member: int) -> None:
    """The member opens their own short link of the run from a phone's browser."""
    with engine.connect() as connection:
        code = connection.execute(
            text("SELECT code FROM short_links WHERE campaign_id = :c AND member_id = :m"),
            {"c": campaign_id, "m": member},
        ).scalar_one()
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"
    with TestClient(create_app(engine), follow_redirects=False) as client:
        assert client.get(f"/s/{code}", headers={"User-Agent": agent}).status_code == 302
