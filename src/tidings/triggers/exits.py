"""Exit conditions checked again when a trigger's message is about to go.

A trigger message is queued ahead of its time (a cart reminder an hour after the cart, a
birthday greeting at the morning's window); what stops it may happen meanwhile. The
dispatcher hands each claimed batch's trigger messages here, and those whose trigger's exit
condition now holds for the member, or whose cart the member has since ordered, are cancelled
with the reason instead of sent. A batch costs one look-up of its triggers and, per trigger
with an exit condition, one read of its members: never a query per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.orm import Session

from tidings.db import read_frame
from tidings.dispatch import claims
from tidings.dispatch.models import MessageState, state_guard
from tidings.segments.audience import local_today
from tidings.triggers import service
from tidings.triggers.events import STAMP
from tidings.triggers.firing import member_frame, members_matching
from tidings.triggers.models import Trigger

EXITED = "exit_condition"  # why a message whose exit condition came to hold was cancelled
ORDERED = "ordered"  # why a cart reminder was cancelled: the member ordered since the cart
CART = "cart_abandoned"
UTC_TIME = pl.Datetime("us", "UTC")
CLAIMED_SCHEMA = {"message_id": pl.Int64, "trigger_id": pl.Int64, "member_id": pl.Int64}


def _ids(values: Sequence[int]) -> str:
    return ", ".join(str(int(v)) for v in values) or "NULL"


def _exited_members(db_session: Session, trigger: Trigger, member_ids: list[int]) -> pl.Series:
    """The members among `member_ids` for whom the trigger's exit condition holds now."""
    spec = service.spec_of(trigger)
    assert spec.exit_condition is not None
    engine = db_session.get_bind()
    assert isinstance(engine, Engine)
    today = local_today()
    members = member_frame(engine, member_ids=member_ids, fields=spec.fields(), today=today)
    return members_matching(engine, db_session, spec.exit_condition, members, today)


def _ordered_since_cart(engine: Engine, carts: pl.DataFrame) -> pl.DataFrame:
    """The cart reminders (`message_id`, `member_id`) whose member ordered at or after the
    cart (its time is in the message's key: trigger:<id>:<member>:cart:<time>:<step>)."""
    ids = _ids(carts["message_id"].to_list())
    keys = read_frame(
        engine,
        f"SELECT id AS message_id, dedupe_key FROM messages WHERE id IN ({ids})",
        schema={"message_id": pl.Int64, "dedupe_key": pl.String},
    )
    members = _ids(carts["member_id"].unique().to_list())
    last = read_frame(
        engine,
        "SELECT member_id, MAX(ordered_at) AS last_at FROM orders"
        f" WHERE member_id IN ({members}) GROUP BY member_id",
        schema={"member_id": pl.Int64, "last_at": UTC_TIME},
    )
    cart_at = (
        pl.col("dedupe_key")
        .str.extract(r":cart:(\d{8}T\d{6}):")
        .str.to_datetime(STAMP, strict=False)
        .dt.replace_time_zone("UTC")
    )
    joined = carts.join(keys, on="message_id").join(last, on="member_id")
    return joined.filter(pl.col("last_at") >= cart_at).select("message_id")


Stopped = tuple[int, int, int, str]  # message id, trigger id, member id, reason


def exited_messages(
    db_session: Session, *, claimed: Sequence[tuple[int, int, int]]
) -> list[Stopped]:
    """Of claimed trigger messages (message id, trigger id, member id), those that should no
    longer go, with the reason; the store is not changed."""
    frame = pl.DataFrame(list(claimed), schema=CLAIMED_SCHEMA, orient="row")
    stopping = db_session.execute(
        text(
            "SELECT id FROM triggers WHERE id IN :ids"
            " AND (exit_condition IS NOT NULL OR kind = :cart)"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": frame["trigger_id"].unique().to_list(), "cart": CART},
    ).scalars()
    engine = db_session.get_bind()
    assert isinstance(engine, Engine)
    reasons: dict[int, str] = {}
    for trigger_id in list(stopping):
        trigger = service.get(db_session=db_session, ref=int(trigger_id))
        mine = frame.filter(pl.col("trigger_id") == trigger.id)
        if trigger.kind == CART:
            reasons.update(dict.fromkeys(_ordered_since_cart(engine, mine)["message_id"], ORDERED))
        if trigger.exit_condition:
            gone = _exited_members(db_session, trigger, mine["member_id"].unique().to_list())
            stopped = mine.filter(pl.col("member_id").is_in(gone.implode()))
            for message_id in stopped["message_id"]:
                reasons.setdefault(int(message_id), EXITED)
    return [
        (int(m), int(t), int(member), reasons[int(m)])
        for m, t, member in frame.filter(pl.col("message_id").is_in(list(reasons))).iter_rows()
    ]


def cancel_exited(
    db_session: Session, *, owner: str, stopped: Sequence[Stopped], now: datetime
) -> None:
    """Takes `owner`'s claimed messages back and cancels them with their reason, their
    firings too."""
    if not stopped:
        return
    claims.put_back(
        db_session=db_session, owner=owner, moves=[(s[0], None) for s in stopped], now=now
    )
    rows = [
        {"message_id": m, "trigger_id": t, "member_id": member, "why": why, "now": now}
        for m, t, member, why in stopped
    ]
    db_session.execute(
        text(
            "UPDATE messages SET state = 'cancelled', skip_reason = :why, final_at = :now,"
            " updated_at = :now, lease_owner = NULL, lease_until = NULL"
            f" WHERE id = :message_id AND {state_guard(MessageState.CANCELLED)}"
        ),
        rows,
    )
    # By trigger and member first: the firings' unique index, not a scan of every firing.
    db_session.execute(
        text(
            "UPDATE trigger_firings SET outcome = 'cancelled', skip_reason = :why"
            " WHERE trigger_id = :trigger_id AND member_id = :member_id AND dedupe_key ="
            " (SELECT dedupe_key FROM messages WHERE id = :message_id AND state = 'cancelled')"
        ),
        rows,
    )
