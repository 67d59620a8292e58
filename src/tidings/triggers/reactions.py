"""How triggers react as things arrive: behaviour events, orders, weather alerts, locations.

Each function stores what arrived where it belongs, turns it into occasions
(`tidings.triggers.events`) and fires the enabled triggers that react to it, in the caller's
transaction; it never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.config import get_settings
from tidings.db import is_sqlite, utc_text
from tidings.dispatch.models import MessageState, state_guard
from tidings.members.phone import fast_e164
from tidings.orders.models import LAST_ORDER_ID, Event
from tidings.segments.audience import local_today
from tidings.triggers import events as occasions
from tidings.triggers import service
from tidings.triggers.catalogue import CUSTOM
from tidings.triggers.firing import Fired, fire, member_frame
from tidings.triggers.models import Trigger
from tidings.triggers.schemas import EventError, EventIn, EventsResult, MemberRef

UTC_TIME = pl.Datetime("us", "UTC")
ORDERED = "ordered"  # why a cart reminder was cancelled
PAYLOAD_FIELDS = ("product", "value", "item")  # payload values triggers show
UNKNOWN_MEMBER = "no member matches its member_id, member_code or phone"
EVENT_SCHEMA: dict[str, Any] = {
    "member_id": pl.Int64,
    "kind": pl.String,
    "occurred_at": UTC_TIME,
    **dict.fromkeys(PAYLOAD_FIELDS, pl.String),
}
CART_STEPS = ("first_after_minutes", "second_after_minutes")


def _expanding(sql: str, *names: str) -> Any:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in names))


def resolve_members(db_session: Session, refs: Sequence[MemberRef]) -> list[int | None]:
    """The member id of each reference (by id, code or phone), None when no member matches."""
    region = get_settings().default_region
    phones = pl.Series([ref.phone for ref in refs], dtype=pl.String)
    e164 = pl.select(fast_e164(pl.lit(phones), region=region)).to_series().to_list()
    ids = [ref.member_id for ref in refs if ref.member_id is not None] or [-1]
    codes = [ref.member_code for ref in refs if ref.member_code] or [""]
    numbers = [phone for phone in e164 if phone] or [""]
    rows = db_session.execute(
        _expanding(
            "SELECT id, code, phone FROM members WHERE erased_at IS NULL AND"
            " (id IN :ids OR code IN :codes OR phone IN :phones)",
            "ids",
            "codes",
            "phones",
        ),
        {"ids": ids, "codes": codes, "phones": numbers},
    ).all()
    by_id = {int(r[0]) for r in rows}
    by_code = {r[1]: int(r[0]) for r in rows if r[1]}
    by_phone = {r[2]: int(r[0]) for r in rows if r[2]}
    found: list[int | None] = []
    for ref, phone in zip(refs, e164, strict=True):
        if ref.member_id is not None:
            found.append(ref.member_id if ref.member_id in by_id else None)
        elif ref.member_code:
            found.append(by_code.get(ref.member_code))
        else:
            found.append(by_phone.get(phone) if phone else None)
    return found


def _insert_events(db_session: Session, rows: list[dict[str, Any]]) -> list[bool]:
    """Stores events in one statement, an event whose id is known already once; tells for each
    row whether it was new (the first of an id sent twice in one go is the new one)."""
    if not rows:
        return []
    insert = sqlite_insert if is_sqlite(db_session) else postgresql_insert
    statement = insert(Event).on_conflict_do_nothing(index_elements=["external_id"])
    new = {row[0] for row in db_session.execute(statement.returning(Event.external_id), rows)}
    stored = []
    for row in rows:
        external = row["external_id"]
        stored.append(external is None or external in new)
        new.discard(external)
    return stored


def _events_frame(kept: list[tuple[EventIn, int]]) -> pl.DataFrame:
    """The events that found their member, as the triggers read them."""
    return pl.DataFrame(
        {
            "member_id": [member for _, member in kept],
            "kind": [event.kind for event, _ in kept],
            "occurred_at": [event.occurred_at for event, _ in kept],
            **{
                name: [_payload_text(event.payload, name) for event, _ in kept]
                for name in PAYLOAD_FIELDS
            },
        },
        schema=EVENT_SCHEMA,
    )


def record_events(
    db_session: Session, *, batches: Sequence[Sequence[EventIn]], now: datetime
) -> list[EventsResult]:
    """Stores batches of events and fires the triggers they set off, all in one pass (one
    look-up of members, one insert); each batch's result carries the pass's firings."""
    flat = [
        (number, index, event) for number, b in enumerate(batches) for index, event in enumerate(b)
    ]
    members = resolve_members(db_session, [event for _, _, event in flat])
    kept = [(entry, member) for entry, member in zip(flat, members, strict=True) if member]
    rows = [
        {
            "external_id": event.id,
            "member_id": member,
            "kind": event.kind,
            "occurred_at": event.occurred_at,
            "payload": event.payload,
            "created_at": now,
        }
        for (_, _, event), member in kept
    ]
    stored = _insert_events(db_session, rows)
    fired = react_to_events(
        db_session, events=_events_frame([(e, m) for (_, _, e), m in kept]), now=now
    )
    results = []
    for number, batch in enumerate(batches):
        errors = [
            EventError(index=index, reason=UNKNOWN_MEMBER)
            for (n, index, _), member in zip(flat, members, strict=True)
            if n == number and member is None
        ]
        new = sum(s for ((n, _, _), _), s in zip(kept, stored, strict=True) if n == number)
        matched = len(batch) - len(errors)
        results.append(
            EventsResult(
                received=len(batch),
                stored=new,
                duplicates=matched - new,
                rejected=len(errors),
                errors=errors,
                fired=fired,
            )
        )
    return results


def _payload_text(payload: dict[str, Any] | None, name: str) -> str | None:
    value = (payload or {}).get(name)
    if value is None and name == "product":
        items = (payload or {}).get("items")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            value = items[0].get("name")
    return None if value is None else str(value)


def _last_orders(db_session: Session, member_ids: list[int]) -> pl.DataFrame:
    """Each of the members' latest order time."""
    store = BulkStore(db_session)
    listed = ", ".join(str(int(i)) for i in member_ids) or "NULL"
    return store.frame(
        f"SELECT member_id, MAX(ordered_at) FROM orders WHERE member_id IN ({listed})"
        " GROUP BY member_id",
        schema={"member_id": pl.Int64, "last_at": UTC_TIME},
    )


def _fire_carts(db_session: Session, trigger: Trigger, carts: pl.DataFrame, now: datetime) -> Fired:
    spec = service.spec_of(trigger)
    ids = carts["member_id"].unique().to_list()
    last = _last_orders(db_session, ids)
    members = member_frame(
        engine_of(db_session), member_ids=ids, fields=spec.fields(), today=local_today()
    )
    stop = float(service.setting(trigger, "stop_after_minutes"))
    steps = [
        occasions.cart_occasions(
            carts, step=step, after_minutes=float(after), stop_after_minutes=stop
        )
        for step, after in enumerate(
            (service.setting(trigger, name) for name in CART_STEPS), start=1
        )
        if after is not None
    ]
    found = occasions.without_later_order(pl.concat(steps), last)
    return fire(db_session, spec=spec, occasions=found, now=now, members=members)


def _fire_custom(
    db_session: Session, trigger: Trigger, events: pl.DataFrame, now: datetime
) -> Fired:
    spec = service.spec_of(trigger)
    found = occasions.custom_event_occasions(
        events, delay_minutes=trigger.delay_minutes, expiry_minutes=trigger.expiry_minutes
    )
    return fire(db_session, spec=spec, occasions=found, now=now)


def react_to_events(
    db_session: Session, *, events: pl.DataFrame, now: datetime
) -> dict[str, dict[str, Any]]:
    """Fires the enabled triggers that react to these events (`member_id`, `kind`,
    `occurred_at`, `product`, `value`, `item`); returns what each did."""
    fired: dict[str, dict[str, Any]] = {}
    if events.height == 0:
        return fired
    carts = events.filter(pl.col("kind") == "cart")
    if carts.height:
        for trigger in service.enabled_of_kind(db_session=db_session, kind="cart_abandoned"):
            fired[trigger.name] = _fire_carts(db_session, trigger, carts, now).as_dict()
    kinds = set(events["kind"].unique().to_list())
    for trigger in service.enabled_of_kind(db_session=db_session, kind=CUSTOM):
        if trigger.event_type in kinds:
            chosen = events.filter(pl.col("kind") == trigger.event_type)
            fired[trigger.name] = _fire_custom(db_session, trigger, chosen, now).as_dict()
    return fired


REPLY_SCHEMA: dict[str, Any] = {
    "reply_id": pl.Int64,
    "member_id": pl.Int64,
    "intent": pl.String,
    "received_at": UTC_TIME,
    "text": pl.String,
}


def replies_arrived(
    db_session: Session,
    *,
    replies: Sequence[tuple[int, int | None, str, datetime, str]],
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """Fires the enabled operator triggers on `reply` or `reply:<intent>` for replies just
    handled (reply id, member id, intent, received at, text); once per reply. Never commits."""
    fired: dict[str, dict[str, Any]] = {}
    frame = pl.DataFrame(list(replies), schema=REPLY_SCHEMA, orient="row")
    if frame.filter(pl.col("member_id").is_not_null()).height == 0:
        return fired
    for trigger in service.enabled_of_kind(db_session=db_session, kind=CUSTOM):
        if not occasions.reacts_to_replies(trigger.event_type):
            continue
        found = occasions.reply_occasions(
            frame,
            event_type=str(trigger.event_type),
            delay_minutes=trigger.delay_minutes,
            expiry_minutes=trigger.expiry_minutes,
        )
        if found.height:
            spec = service.spec_of(trigger)
            fired[trigger.name] = fire(db_session, spec=spec, occasions=found, now=now).as_dict()
    return fired


def _new_orders(
    db_session: Session, first_order_id: int, last_order_id: int, *, placed_since: datetime
) -> pl.DataFrame:
    """Orders from `first_order_id` to `last_order_id`, with their store's name, points
    earned and balance: those placed since `placed_since` and those of members with a queued
    cart reminder. An import of old orders thus reads none of them back."""
    store = BulkStore(db_session)
    since = utc_text(placed_since) if store.dialect == "sqlite" else placed_since
    return store.frame(
        "SELECT o.id, o.member_id, o.ordered_at, o.amount_cents, s.name, m.points,"
        " (SELECT SUM(l.points) FROM points_lots l WHERE l.order_id = o.id"
        " AND l.kind = 'accrual') FROM orders o JOIN members m ON m.id = o.member_id"
        " LEFT JOIN stores s ON s.id = o.store_id WHERE o.id BETWEEN ? AND ? AND (o.ordered_at >= ?"
        " OR o.member_id IN (SELECT f.member_id FROM trigger_firings f JOIN triggers t"
        " ON t.id = f.trigger_id WHERE f.outcome = 'queued' AND t.kind = 'cart_abandoned'))",
        (first_order_id, last_order_id, since),
        schema={
            "order_id": pl.Int64,
            "member_id": pl.Int64,
            "ordered_at": UTC_TIME,
            "amount_cents": pl.Int64,
            "store_name": pl.String,
            "points_balance": pl.Int64,
            "points_earned": pl.Int64,
        },
    )


def cancel_cart_reminders(db_session: Session, *, orders: pl.DataFrame, now: datetime) -> int:
    """Cancels the queued cart reminders of members who ordered after their cart; returns how
    many messages that stopped."""
    triggers = db_session.execute(
        text("SELECT id FROM triggers WHERE kind = 'cart_abandoned'")
    ).scalars()
    trigger_ids = [int(i) for i in triggers]
    if not trigger_ids or orders.height == 0:
        return 0
    members = ", ".join(str(int(i)) for i in orders["member_id"].unique().to_list())
    triggers_listed = ", ".join(str(i) for i in trigger_ids)
    frame = BulkStore(db_session).frame(
        "SELECT member_id, event_at, dedupe_key FROM trigger_firings WHERE outcome = 'queued'"
        f" AND trigger_id IN ({triggers_listed}) AND member_id IN ({members})",
        schema={"member_id": pl.Int64, "event_at": UTC_TIME, "dedupe_key": pl.String},
    )
    latest = orders.group_by("member_id").agg(pl.col("ordered_at").max())
    keys = (
        frame.join(latest, on="member_id")
        .filter(pl.col("ordered_at") >= pl.col("event_at"))["dedupe_key"]
        .to_list()
    )
    if not keys:
        return 0
    movable = state_guard(MessageState.CANCELLED)
    moved = db_session.execute(
        _expanding(
            "UPDATE messages SET state = 'cancelled', skip_reason = :why, final_at = :now,"
            f" updated_at = :now WHERE dedupe_key IN :keys AND {movable}",
            "keys",
        ),
        {"why": ORDERED, "now": now, "keys": keys},
    )
    db_session.execute(
        _expanding(
            "UPDATE trigger_firings SET outcome = 'cancelled', skip_reason = :why"
            " WHERE dedupe_key IN (SELECT dedupe_key FROM messages WHERE state = 'cancelled'"
            " AND dedupe_key IN :keys)",
            "keys",
        ),
        {"why": ORDERED, "keys": keys},
    )
    return int(moved.rowcount or 0)  # type: ignore[attr-defined]


def orders_arrived(
    db_session: Session, *, first_order_id: int, now: datetime, last_order_id: int = LAST_ORDER_ID
) -> dict[str, dict[str, Any]]:
    """Reacts to orders an import or the API just created (ids from `first_order_id` to
    `last_order_id`): cancels the cart reminders they make pointless and fires receipts for
    recent ones."""
    receipts = service.enabled_of_kind(db_session=db_session, kind="receipt")
    ages = [float(service.setting(trigger, "max_age_minutes")) for trigger in receipts]
    placed_since = now - timedelta(minutes=max(ages)) if ages else now
    orders = _new_orders(db_session, first_order_id, last_order_id, placed_since=placed_since)
    fired: dict[str, dict[str, Any]] = {}
    if orders.height == 0:
        return fired
    cancelled = cancel_cart_reminders(db_session, orders=orders, now=now)
    if cancelled:
        fired["cart_abandoned"] = {"cancelled": cancelled}
    zone = get_settings().default_timezone
    for trigger in receipts:
        max_age = service.setting(trigger, "max_age_minutes")
        recent = orders.filter(pl.col("ordered_at") >= now - timedelta(minutes=float(max_age)))
        found = occasions.receipt_occasions(
            recent, delay_minutes=float(service.setting(trigger, "delay_minutes")), timezone=zone
        )
        spec = service.spec_of(trigger)
        fired[trigger.name] = fire(db_session, spec=spec, occasions=found, now=now).as_dict()
    return fired


def engine_of(db_session: Session) -> Engine:
    """The engine a session is bound to (triggers read members through it in bulk)."""
    engine = db_session.get_bind()
    assert isinstance(engine, Engine), "triggers react on a session bound to an engine"
    return engine
