"""The migrations build exactly the tables the models describe, on both stores, and move
the rows of a store already in use."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

import tidings.models  # noqa: F401
from tidings import migrate
from tidings.db import Base, session_scope
from tidings.dispatch.models import Message
from tidings.tracking import service as tracking


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


OLD_KEYS = {
    "campaign:5:member:7": (5, 0),
    "campaign:5:step:1:member:7": (5, 1),
    "trigger:3:7:2026-11-01": (None, 0),
}


def _message(key: str | None, campaign_id: int | None, step: int) -> dict[str, object]:
    moment = datetime(2026, 11, 1, 2, tzinfo=UTC)
    return {
        "dedupe_key": key,
        "campaign_id": campaign_id,
        "member_id": 7,
        "phone": "+8613900000007",
        "kind": "marketing",
        "priority": 9,
        "text": "【品牌】周末鲜果8折 拒收请回复R",
        "parts": 1,
        "cost_cents": 5,
        "state": "delivered",
        "rollout_stage": 0,
        "step": step,
        "send_at": moment,
        "provider": "simulator",
        "attempts": 1,
        "created_at": moment,
        "updated_at": moment,
    }


def _keys(engine: Engine) -> dict[tuple[int | None, int], str | None]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT campaign_id, step, dedupe_key FROM messages"))
        return {(row[0], row[1]): row[2] for row in rows}


def test_campaign_messages_move_to_member_campaign_and_step_and_back(bare_store: Engine) -> None:
    migrate.upgrade(bare_store, "0022")
    messages = Message.__table__
    with bare_store.begin() as connection:
        for key, (campaign_id, step) in OLD_KEYS.items():
            connection.execute(messages.insert().values(_message(key, campaign_id, step)))
        connection.execute(
            text(
                "INSERT INTO short_links (code, dedupe_key, campaign_id, member_id, target_url,"
                " created_at) VALUES ('k1', 'campaign:5:member:7', 5, 7, 'https://shop.example.cn/',"
                " '2026-11-01 02:00:00')"
            )
        )

    migrate.upgrade(bare_store)

    assert _keys(bare_store) == {(5, 0): None, (5, 1): None, (None, 0): "trigger:3:7:2026-11-01"}
    with session_scope(bare_store) as session:
        link = tracking.show(db_session=session, code="k1")
        first = session.scalar(
            select(Message.id).where(Message.campaign_id == 5, Message.step == 0)
        )
    assert link["message_id"] == first
    with pytest.raises(IntegrityError), bare_store.begin() as connection:
        connection.execute(messages.insert().values(_message(None, 5, 0)))
    # Only keyed messages are in the key's index now (0024), and it still holds them apart.
    with pytest.raises(IntegrityError), bare_store.begin() as connection:
        connection.execute(messages.insert().values(_message("trigger:3:7:2026-11-01", None, 1)))

    _downgrade(bare_store, "0022")

    assert _keys(bare_store) == {key: code for code, key in OLD_KEYS.items()}
    with bare_store.connect() as connection:
        assert connection.execute(text("SELECT dedupe_key FROM short_links")).scalar_one() == (
            "campaign:5:member:7"
        )


def _downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
