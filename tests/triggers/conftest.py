"""Helpers of the trigger tests: members written one by one, the messages triggers wrote, and
a clock frozen at a chosen local time in the brand's timezone (Asia/Shanghai)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, text

from tidings import clock
from tidings.campaigns.sources import phone_hash
from tidings.db import session_scope
from tidings.members.models import ConsentEvent, ConsentKind, Member, Store, Suppression

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in the brand's timezone (aware)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """Freezes the clock at `moment`."""
    with clock.frozen(moment):
        yield


def add_store(engine: Engine, *, code: str = "SH01", city: str = "上海", **extra: Any) -> int:
    """Writes a store; returns its id."""
    with session_scope(engine) as session:
        store = Store(code=code, name=extra.pop("name", f"{city}{code}店"), city=city, **extra)
        session.add(store)
        session.flush()
        return store.id


def add_member(
    engine: Engine,
    member_id: int,
    *,
    consent: bool = True,
    opted_out: bool = False,
    store_id: int | None = None,
    birthday: date | None = None,
    lunar: bool = False,
    name: str = "王小明",
    **extra: Any,
) -> int:
    """Writes a member (phone +8613900000<id>) with an opt-in unless told otherwise."""
    phone = f"+86139{member_id:08d}"
    with session_scope(engine) as session:
        session.add(
            Member(
                id=member_id,
                code=f"M{member_id}",
                phone=phone,
                name=name,
                gender="M",
                store_id=store_id,
                birthday=birthday,
                birthday_is_lunar=lunar,
                **extra,
            )
        )
        session.flush()
        moment = clock.now()
        if consent or opted_out:
            session.add(_consent(member_id, ConsentKind.OPT_IN, moment))
        if opted_out:
            session.add(_consent(member_id, ConsentKind.OPT_OUT, moment))
            session.add(Suppression(phone_hash=phone_hash(phone), reason="opted_out", source="R"))
    return member_id


def _consent(member_id: int, kind: ConsentKind, moment: datetime) -> ConsentEvent:
    return ConsentEvent(member_id=member_id, kind=kind, source="test", occurred_at=moment)


def add_sent_messages(engine: Engine, member_id: int, count: int, *, sent_at: datetime) -> None:
    """Records `count` marketing messages already delivered to a member at `sent_at`."""
    with session_scope(engine) as session:
        for index in range(count):
            session.execute(
                text(
                    "INSERT INTO messages (dedupe_key, member_id, phone, kind, priority, text,"
                    " parts, cost_cents, state, rollout_stage, send_at, submitted_at, provider,"
                    " attempts, created_at, updated_at) VALUES (:key, :member, '+86139', "
                    "'marketing', 9, 'x', 1, 5, 'delivered', 0, :at, :at, 'simulator', 1, :at, :at)"
                ),
                {"key": f"earlier:{member_id}:{index}", "member": member_id, "at": sent_at},
            )


def trigger_messages(engine: Engine, trigger: str) -> pl.DataFrame:
    """The messages of one trigger (by name): member, state, reason, text, send and expiry."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.member_id, m.state, m.skip_reason, m.text, m.kind, m.send_at,"
                " m.expires_at FROM messages m JOIN triggers t ON t.id = m.trigger_id"
                " WHERE t.name = :name ORDER BY m.member_id, m.id"
            ),
            {"name": trigger},
        ).all()
    names = ["member_id", "state", "skip_reason", "text", "kind", "send_at", "expires_at"]
    return pl.DataFrame(
        [tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None
    )


def run_date_trigger(engine: Engine, name: str, moment: datetime) -> dict[str, Any]:
    """Runs the scheduler for one date trigger with the clock at `moment`; returns its counts."""
    from tidings.triggers.scheduler import run_once

    with at(moment):
        report = run_once(engine, now=clock.now(), only=name)
    assert report is not None
    return report[name]
