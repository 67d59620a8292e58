"""The campaign report counts what became of each message of a small hand-built campaign:
funnel per campaign, variant, store and day, A/B against the control, lift over the holdout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tidings.dispatch.service import CampaignNotFound
from tidings.reports.service import campaign_report

from .world import SENT, World, hand_built_campaign

LATER = SENT + timedelta(days=10)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    session = Session(engine)
    yield session
    session.rollback()
    session.close()


def test_the_funnel_counts_each_outcome_once(session: Session) -> None:
    ids = hand_built_campaign(World(session))

    report = campaign_report(db_session=session, campaign_id=ids["campaign"], now=LATER)

    assert report["funnel"] == {
        "planned": 6,
        "sent": 5,
        "delivered": 4,
        "failed": 1,
        "clicked": 1,
        "replied": 2,
        "opted_out": 1,
        "complained": 1,
        "converted": 2,
        "revenue_cents": 25_000,
        "cost_cents": 35,
        "revenue_per_message_cents": 5_000,
        "cost_per_conversion_cents": 18,
    }
    assert report["campaign"]["control"] == "A"
    assert report["campaign"]["holdout_share"] == 0.25


def test_rows_per_variant_store_and_day(session: Session) -> None:
    ids = hand_built_campaign(World(session))

    report = campaign_report(db_session=session, campaign_id=ids["campaign"], now=LATER)

    variants = {row["variant"]: row for row in report["by_variant"]}
    assert set(variants) == {"A", "B"}
    assert (variants["A"]["sent"], variants["A"]["failed"], variants["A"]["clicked"]) == (2, 1, 1)
    assert (variants["A"]["revenue_cents"], variants["A"]["cost_cents"]) == (20_000, 20)
    assert (variants["B"]["opted_out"], variants["B"]["complained"]) == (1, 1)
    assert variants["B"]["revenue_per_message_cents"] == round(5_000 / 3)
    stores = {row["store_code"]: row for row in report["by_store"]}
    assert (stores["SH01"]["planned"], stores["BJ01"]["planned"]) == (4, 2)
    assert stores["BJ01"]["converted"] == 0 and stores["BJ01"]["cost_per_conversion_cents"] is None
    # Sent at 10:00 in Shanghai on 2 November.
    assert [(row["day"], row["sent"]) for row in report["by_day"]] == [("2026-11-02", 5)]


def test_ab_compares_b_with_the_control_and_lift_counts_the_holdout(session: Session) -> None:
    ids = hand_built_campaign(World(session))

    report = campaign_report(db_session=session, campaign_id=ids["campaign"], now=LATER)

    [comparison] = report["ab"]
    assert (comparison["variant"], comparison["control"]) == ("B", "A")
    assert (comparison["recipients"], comparison["control_recipients"]) == (3, 2)
    assert isinstance(comparison["verdict"], str) and comparison["verdict"]
    lift = report["lift"]
    assert lift["treated"]["members"] == 6 and lift["holdout"]["members"] == 2
    assert lift["treated"]["converted"] == 2 and lift["holdout"]["converted"] == 1
    assert lift["window"]["complete"] is True
    assert lift["window"]["end"] == (SENT + timedelta(days=3)).isoformat()


def test_the_report_credits_the_orders_first_and_again_changes_nothing(session: Session) -> None:
    ids = hand_built_campaign(World(session))

    first = campaign_report(db_session=session, campaign_id=ids["campaign"], now=LATER)
    again = campaign_report(db_session=session, campaign_id=ids["campaign"], now=LATER)

    assert first["funnel"]["converted"] == 2
    assert again["funnel"] == first["funnel"]


def test_an_unknown_campaign_is_said_so(session: Session) -> None:
    with pytest.raises(CampaignNotFound):
        campaign_report(db_session=session, campaign_id=999, now=LATER)


def test_a_campaign_not_sent_yet_reports_zeros_and_no_verdicts(session: Session) -> None:
    campaign_id, _ = World(session).campaign()

    report = campaign_report(db_session=session, campaign_id=campaign_id, now=LATER)

    assert report["funnel"]["planned"] == 0 and report["funnel"]["sent"] == 0
    assert report["funnel"]["revenue_per_message_cents"] is None
    assert (report["by_variant"], report["by_store"], report["by_day"]) == ([], [], [])
    assert report["ab"] == [] and report["lift"]["window"] is None
