"""Fixtures of the tracking tests: the brand's short domain and link key, and a campaign with
a link planned and sent to a few members."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings.campaigns import service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.segments.snapshot import invalidate

SHORT_DOMAIN = "https://t.example.cn"
TARGET = "https://shop.example.com/sale?store=SH01#top"


@pytest.fixture
def short_links(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The brand's short domain, a key of its own and a fresh audience for every test."""
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", SHORT_DOMAIN)
    monkeypatch.setenv("TIDINGS_SHORT_LINK_SECRET", "tracking-tests")
    monkeypatch.setenv("TIDINGS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    invalidate()
    yield
    get_settings.cache_clear()


def create_campaign(engine: Engine, **fields: object) -> int:
    """A draft campaign for everyone with a {link}, two variants by default."""
    values: dict[str, object] = {
        "name": "周末鲜果",
        "rule": "consent == true or consent == false",
        "variants": [
            VariantCreate(template="{surname}，周末鲜果8折 {link}"),
            VariantCreate(template="{surname}，鲜果满99减20，详见{link}"),
        ],
        "link": TARGET,
    }
    values.update(fields)
    with session_scope(engine) as session:
        spec = CampaignCreate(**values)  # type: ignore[arg-type]
        return service.create(db_session=session, spec=spec).id


def plan_campaign(engine: Engine, campaign_id: int) -> dict[str, object]:
    """Plans (again) and commits."""
    with session_scope(engine) as session:
        return service.plan(db_session=session, campaign_id=campaign_id)


def send_campaign(engine: Engine, campaign_id: int) -> int:
    """Sends a planned campaign (its links are written as it goes) and commits."""
    with session_scope(engine) as session:
        return service.send(db_session=session, campaign_id=campaign_id)


def link_rows(engine: Engine, campaign_id: int | None = None) -> pl.DataFrame:
    """Short links (of one campaign, or all) with their message's member, state and text."""
    where = "" if campaign_id is None else f" WHERE l.campaign_id = {int(campaign_id)}"
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT l.id, l.code, l.member_id, l.campaign_id, l.target_url, m.state, m.text"
                " FROM short_links l LEFT JOIN messages m ON m.member_id = l.member_id"
                " AND m.campaign_id = l.campaign_id AND m.step = 0"
                f"{where} ORDER BY l.member_id"
            )
        ).all()
    schema = ["id", "code", "member_id", "campaign_id", "target_url", "state", "text"]
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
