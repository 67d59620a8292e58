"""Helpers of the trigger tests: members written one by one, the messages triggers wrote, and
a clock frozen at a chosen local time in the brand's timezone (Asia/Shanghai)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

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
    from tidings.dispatch.models import Message
    from tidings.triggers.models import Trigger

    m = Message
    query = (
        select(m.member_id, m.state, m.skip_reason, m.text, m.kind, m.send_at, m.expires_at)
        .join(Trigger, Trigger.id == m.trigger_id)
        .where(Trigger.name == trigger)
        .order_by(m.member_id, m.id)
    )
    with session_scope(engine) as session:
        rows = [
            (r[0], str(r[1]), r[2], r[3], str(r[4]), r[5], r[6]) for r in session.execute(query)
        ]
    names = ["member_id", "state", "skip_reason", "text", "kind", "send_at", "expires_at"]
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def run_date_trigger(engine: Engine, name: str, moment: datetime) -> dict[str, Any]:
    """Runs the scheduler for one date trigger with the clock at `moment`; returns its counts."""
    from tidings.triggers.scheduler import run_once

    with at(moment):
        report = run_once(engine, now=clock.now(), only=name)
    assert report is not None
    return report[name]


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """The API on the test store, with a key."""
    from tidings.accounts import service as accounts
    from tidings.app import create_app

    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="pos")
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})


def cart(member_id: int, moment: datetime, **extra: Any) -> dict[str, Any]:
    """A cart event as an integrator sends it."""
    return {
        "member_id": member_id,
        "kind": "cart",
        "occurred_at": moment.isoformat(),
        "payload": {"product": "有机牛奶 1L"},
        **extra,
    }


def order_line(member_id: int, order_id: str, moment: datetime, amount: str = "88.50") -> dict:
    """One order line for POST /api/v1/orders:batch."""
    return {
        "order_id": order_id,
        "ordered_at": moment.isoformat(),
        "amount": amount,
        "member_code": f"M{member_id}",
        "store_code": "SH01",
    }


def add_order(
    engine: Engine, member_id: int, moment: datetime, *, amount_cents: int = 5000
) -> None:
    """Writes an order of a member at `moment` (no lines, no points)."""
    from tidings.orders.models import Order

    with session_scope(engine) as session:
        count = session.execute(text("SELECT COUNT(*) FROM orders")).scalar_one()
        session.add(
            Order(
                external_id=f"SO-{count + 1}",
                member_id=member_id,
                ordered_at=moment,
                amount_cents=amount_cents,
            )
        )


def add_profile(engine: Engine, member_id: int, **fields: Any) -> None:
    """Writes a member's profile with the given fields (the rest at their defaults)."""
    from tidings.profiles.models import Profile

    with session_scope(engine) as session:
        values = {"as_of": date(2026, 6, 1), "lifecycle_stage": "active", **fields}
        session.add(Profile(member_id=member_id, **values))
