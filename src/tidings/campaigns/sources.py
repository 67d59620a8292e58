"""What the planner reads from the store and how its plan goes back: all in bulk.

The audience comes from the segment snapshot (members, stores, profiles, consent), with each
member's own timezone; history is every message that counts towards caps and cool-downs;
suppressions are keyed by phone hash. The plan replaces the campaign's earlier plan in one
transaction, so planning twice leaves one row per member and campaign.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import polars_hash as plh
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tidings.bulk import (
    SQLITE_APPEND_BLOCK,
    SQLITE_ROWS_PER_STATEMENT,
    LaidOut,
    WriteBehind,
    bulk_insert,
    multi_row_params,
    run_laid_out,
    wide_page_cache,
)
from tidings.campaigns.models import Campaign
from tidings.campaigns.phases import PhaseTimer
from tidings.campaigns.planner import MESSAGE_KIND, dispatch_priority
from tidings.db import POLARS_SQLITE_TIME_FORMAT, is_sqlite, read_frame, utc_text
from tidings.dispatch.models import MessageState
from tidings.policy.rules import PolicyRules
from tidings.scans import TableScan, read_tables_in_children
from tidings.segments.compiler import Context, compile_rule
from tidings.segments.fields import FIELDS
from tidings.segments.history import aggregates_used
from tidings.segments.service import matching_ids
from tidings.segments.snapshot import order_lines_snapshot, snapshot
from tidings.segments.tree import Rule

UTC_TIME = pl.Datetime("us", "UTC")
# Message states that never reach a handset, so never count towards a cap or cool-down.
NOT_SENT = (MessageState.SKIPPED.value, MessageState.CANCELLED.value)
# SQLite page cache while a plan is written: a million members' messages, links and coupons
# dirty about 600 MB of pages, kept until the commit instead of spilled and written twice.
WRITE_CACHE_KIB = 1024 * 1024


def phone_hash(phone: str) -> str:
    """The key of a phone in the suppression list: SHA-256 of its E.164 text, in hex."""
    return hashlib.sha256(phone.encode()).hexdigest()


def phone_hashes(phones: pl.Series) -> pl.Series:
    """Hashes many phones at once (the same hex as `phone_hash`); empty phones hash to ''."""
    frame = phones.rename("phone").to_frame()
    empty = pl.col("phone").is_null() | (pl.col("phone") == "")
    digest = plh.col("phone").chash.sha2_256()
    hashed = frame.select(pl.when(empty).then(pl.lit("")).otherwise(digest).alias("phone_hash"))
    return hashed["phone_hash"]


def audience_for(
    engine: Engine,
    *,
    rule: Rule,
    saved: Any,
    today: Any,
    timezone: str,
    fields: Collection[str] | None = None,
) -> pl.DataFrame:
    """The members a rule matches, their audience fields, and each one's own timezone.

    With `fields`, only those and the fields the rule reads are needed: a snapshot in memory
    serves, or only their columns are read from the store.
    """
    if fields is not None:
        condition = compile_rule(rule, Context(today, ZoneInfo(timezone), saved))
        rule_fields = (n for n in condition.meta.root_names() if n in FIELDS)
        fields = {*fields, *rule_fields, "timezone"}
    audience = snapshot(engine, today=today, fields=fields)
    lines = order_lines_snapshot(engine) if aggregates_used(rule, saved) else None
    ids = matching_ids(rule=rule, audience=audience, order_lines=lines, today=today, saved=saved)
    chosen = audience.join(ids.to_frame(), on="member_id", how="semi", maintain_order="left")
    return chosen.with_columns(pl.col("timezone").fill_null(timezone))


def suppressions(engine: Engine) -> pl.DataFrame:
    """Every suppressed phone hash with its reason."""
    return _read(
        engine,
        "SELECT phone_hash, reason FROM suppressions",
        {"phone_hash": pl.String, "reason": pl.String},
    )


def history(
    engine: Engine,
    *,
    campaign_id: int,
    rules: PolicyRules,
    now: datetime,
    member_ids: Collection[int] | None = None,
) -> pl.DataFrame:
    """Messages of other campaigns and triggers that count towards caps and cool-downs.

    Sent ones by when they were handed over, planned and queued ones by when they will go;
    only those near enough to `now` to matter for the longest cap or the cool-down, and only
    those of `member_ids` when given (a trigger firing for a batch of events).
    """
    longest = max([rule.window_days for rule in rules.caps] + [rules.offer_cooldown_days, 1])
    since = now - timedelta(days=longest)
    moment = utc_text(since) if engine.dialect.name == "sqlite" else since.isoformat()
    excluded = ", ".join(f"'{state}'" for state in NOT_SENT)
    where = (
        f"member_id IS NOT NULL AND state NOT IN ({excluded})"
        f" AND (campaign_id IS NULL OR campaign_id <> {int(campaign_id)})"
        f" AND COALESCE(submitted_at, send_at) >= '{moment}'"
    )
    if member_ids is not None:
        where += f" AND member_id IN ({', '.join(str(int(i)) for i in member_ids) or 'NULL'})"
    scan = dataclasses.replace(HISTORY_SCAN, where=where)
    if member_ids is not None:  # a few members: found through their index, here
        return _read(engine, scan.sql(), HISTORY_SCHEMA)
    # Every message is looked at: on a big SQLite store, children scan slices side by side.
    return read_tables_in_children(engine, {"history": scan})["history"]


HISTORY_SCHEMA: dict[str, Any] = {
    "member_id": pl.Int64,
    "kind": pl.String,
    "sent_at": UTC_TIME,
    "campaign_id": pl.Int64,
    "trigger_id": pl.Int64,
    "offer_type": pl.String,
}
HISTORY_SCAN = TableScan(
    table="messages",
    columns="member_id, kind, COALESCE(submitted_at, send_at) AS sent_at, campaign_id,"
    " trigger_id, offer_type",
    schema=HISTORY_SCHEMA,
    slices=2,
)


def _read(engine: Engine, sql: str, schema: dict[str, Any]) -> pl.DataFrame:
    """Runs a query in bulk (see `tidings.db.read_frame`) and returns a frame of `schema`."""
    frame = read_frame(engine, sql)
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    casts = []
    for name, dtype in schema.items():
        current = frame.schema[name]
        if dtype == UTC_TIME and current == pl.String:
            casts.append(
                pl.col(name).str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
            )
        elif dtype == UTC_TIME and isinstance(current, pl.Datetime):
            zone = pl.col(name)
            if current.time_zone is None:
                zone = zone.dt.replace_time_zone("UTC")
            casts.append(zone.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        else:
            casts.append(pl.col(name).cast(dtype))
    return frame.select(casts)


def _literal(value: object) -> str:
    """A constant as SQL text: numbers as they are, text quoted, None as NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def write_campaign_plan(
    db_session: Session,
    *,
    campaign: Campaign,
    pieces: Iterable[pl.DataFrame],
    timer: PhaseTimer,
    now: datetime,
) -> pl.DataFrame:
    """Writes a campaign's plan as it is made, under one wide SQLite page cache, and returns
    it whole: each piece's messages are stored on a thread of their own while the next
    piece is planned (phase `plan`), then the messages still under way (phase `write`).
    Making a piece must not touch the store: the writer holds the session's connection
    meanwhile. The coupons and short links the messages show are issued when their stage is
    released (`campaigns.release`)."""
    shared = plan_values(
        campaign_id=campaign.id,
        kind=MESSAGE_KIND[campaign.kind].value,
        priority=dispatch_priority(campaign.kind),
        offer_type=campaign.offer_type,
        provider=campaign.provider,
    )
    made = []
    with wide_page_cache(db_session, WRITE_CACHE_KIB), WriteBehind() as writer:
        writer.submit(functools.partial(clear_plan, db_session, campaign_id=campaign.id))
        with timer("plan"):
            for piece in pieces:
                write = functools.partial(insert_plan, db_session, piece, shared, now=now)
                writer.submit(write)
                made.append(piece)
        with timer("write"):
            writer.wait()
    return pl.concat(made)


def plan_values(
    *,
    campaign_id: int,
    kind: str,
    priority: int,
    offer_type: str | None,
    provider: str,
    step: int = 0,
) -> dict[str, object]:
    """What every message of a campaign's plan (of `step`) holds alike."""
    return {
        "campaign_id": campaign_id,
        "kind": kind,
        "offer_type": offer_type,
        "priority": priority,
        "provider": provider,
        "attempts": 0,
        "step": step,
    }


def write_plan(
    db_session: Session,
    *,
    campaign_id: int,
    plan: pl.DataFrame,
    kind: str,
    priority: int,
    offer_type: str | None,
    provider: str,
    now: datetime,
    step: int = 0,
) -> int:
    """Replaces the campaign's planned and skipped messages (of `step`) with `plan`, in bulk."""
    clear_plan(db_session, campaign_id=campaign_id, step=step)
    shared = plan_values(
        campaign_id=campaign_id,
        kind=kind,
        priority=priority,
        offer_type=offer_type,
        provider=provider,
        step=step,
    )
    return insert_plan(db_session, plan, shared, now=now)


def clear_plan(db_session: Session, *, campaign_id: int, step: int = 0) -> None:
    """Deletes the campaign's planned and skipped messages (of `step`): an earlier plan's."""
    db_session.execute(
        text(
            "DELETE FROM messages WHERE campaign_id = :id AND step = :step"
            " AND state IN ('planned', 'skipped')"
        ),
        {"id": campaign_id, "step": step},
    )


def insert_plan(
    db_session: Session, plan: pl.DataFrame, shared: dict[str, object], *, now: datetime
) -> int:
    """Inserts the messages of `plan` (rows of `planner.plan_pieces`) with the values every
    message shares (`plan_values`), in bulk.

    Member, campaign and step tell a message apart (a unique index): no key of its own.
    What every row shares goes into the statement once; only the rest travels per row.
    """
    if is_sqlite(db_session):
        return _insert_sqlite(db_session, plan, shared, now=now)
    rows = plan.select(
        "member_id",
        "variant_id",
        "phone",
        "timezone",
        "text",
        "parts",
        "cost_cents",
        "state",
        "skip_reason",
        "rollout_stage",
        "send_at",
        "expires_at",
        final_at=pl.when(pl.col("state") == MessageState.SKIPPED.value).then(
            pl.lit(now, dtype=UTC_TIME)
        ),
        created_at=pl.lit(now, dtype=UTC_TIME),
        updated_at=pl.lit(now, dtype=UTC_TIME),
        **{name: pl.lit(value) for name, value in shared.items()},
    )
    return bulk_insert(db_session, "messages", rows)


# What a planned and a skipped message bind per row; the rest of each is the same for all.
EITHER_BOUND = ("member_id", "phone", "timezone", "rollout_stage", "send_at")
PLANNED_BOUND = ("variant_id", "text", "parts", "cost_cents")
SKIPPED_BOUND = ("skip_reason",)


def _insert_sqlite(
    db_session: Session,
    plan: pl.DataFrame,
    shared: dict[str, object],
    *,
    now: datetime,
) -> int:
    """Multi-row INSERTs with the shared values written into the statement, and a wide page
    cache while the indexes grow (a million rows touch every page of each index).

    Every value bound per row costs a Python object and a bind, so what all rows share (the
    times, the expiry) is written into the statement, and planned and skipped messages go in
    by a statement each: a skipped one binds only its reason, a planned one its variant,
    text, parts and cost. Rows go `SQLITE_ROWS_PER_STATEMENT` to a statement, their values
    laid out by `tidings.bulk.multi_row_params` as `append_rows` does: a statement per row
    cost more in binding and stepping than SQLite's own work.
    """
    raw = db_session.connection().connection.driver_connection
    assert raw is not None
    as_text = pl.col(pl.Datetime).dt.strftime(POLARS_SQLITE_TIME_FORMAT)
    with wide_page_cache(db_session, WRITE_CACHE_KIB):
        for insert in _sqlite_inserts(plan, shared, now=now):
            rows = plan.filter(pl.col("state") == insert.state).select(insert.names)
            _insert_rows(raw, insert, rows.with_columns(as_text))
    return plan.height


@dataclass(frozen=True)
class _SqliteInsert:
    """The INSERT of one state's messages: the columns bound per row, and every column's
    SQL (the bound ones absent: they are numbered per row of a multi-row statement)."""

    state: str
    names: list[str]
    constant: dict[str, str]

    def statement(self, rows: int) -> str:
        """The INSERT of `rows` rows, binding `len(names)` values each, in order."""
        columns = [*self.names, *self.constant]
        width = len(self.names)
        groups = []
        for row in range(rows):
            first = row * width + 1
            bound = [f"?{first + i}" for i in range(width)]
            groups.append("(" + ", ".join([*bound, *self.constant.values()]) + ")")
        return f"INSERT INTO messages ({', '.join(columns)}) VALUES {', '.join(groups)}"


def _insert_rows(raw: Any, insert: _SqliteInsert, rows: pl.DataFrame) -> None:
    """Inserts `rows` (the bound columns) `SQLITE_ROWS_PER_STATEMENT` to a statement, a
    block laid out while the one before is stored (`tidings.bulk.run_laid_out`)."""
    per = SQLITE_ROWS_PER_STATEMENT

    def lay_out(start: int) -> LaidOut:
        grouped, rest = multi_row_params(rows.slice(start, SQLITE_APPEND_BLOCK), per)
        return [(insert.statement(per), grouped), (insert.statement(1), rest)]

    starts = range(0, rows.height, SQLITE_APPEND_BLOCK)
    run_laid_out(raw, (functools.partial(lay_out, start) for start in starts))


def _sqlite_inserts(
    plan: pl.DataFrame, shared: dict[str, object], *, now: datetime
) -> list[_SqliteInsert]:
    """The INSERTs of the planned and of the skipped rows."""
    moment = _literal(utc_text(now))
    constant = {
        "created_at": moment,
        "updated_at": moment,
        **{name: _literal(value) for name, value in shared.items()},
    }
    bound = list(EITHER_BOUND)
    expiry = plan["expires_at"].unique()
    if expiry.len() == 1:  # the planner's: one expiry for the campaign
        constant["expires_at"] = "NULL" if expiry[0] is None else _literal(utc_text(expiry[0]))
    else:
        bound.append("expires_at")
    skipped = {"text": "''", "parts": "0", "cost_cents": "0", "final_at": moment}
    return [
        _SqliteInsert(
            state=state,
            names=[*bound, *own],
            constant={**constant, **fixed, "state": _literal(state)},
        )
        for state, own, fixed in (
            (MessageState.PLANNED.value, PLANNED_BOUND, {}),
            (MessageState.SKIPPED.value, SKIPPED_BOUND, skipped),
        )
    ]
