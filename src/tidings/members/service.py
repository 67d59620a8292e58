"""Member operations on the store: set-based upserts for imports, lookups for people.

The bulk functions take a `BulkStore` (one connection, one transaction) and never commit;
the import or the request that called them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.db import utc_text
from tidings.imports.loading import key_rows, keys_param, reserve_ids
from tidings.members.models import ConsentEvent, ConsentKind, Member, Store

UTC_TIME = pl.Datetime("us", "UTC")
MEMBER_COLUMNS: dict[str, Any] = {
    "id": pl.Int64,
    "code": pl.String,
    "phone": pl.String,
    "phone_status": pl.String,
    "name": pl.String,
    "gender": pl.String,
    "birthday": pl.Date,
    "birthday_is_lunar": pl.Boolean,
    "store_id": pl.Int64,
    "tier": pl.String,
    "points": pl.Int64,
    "registered_at": UTC_TIME,
}
SQL_TYPES = {
    "id": "BIGINT",
    "grp": "BIGINT",
    "member_id": "BIGINT",
    "code": "VARCHAR(64)",
    "phone": "VARCHAR(20)",
    "phone_status": "VARCHAR(16)",
    "name": "VARCHAR(200)",
    "gender": "VARCHAR(1)",
    "birthday": "DATE",
    "birthday_is_lunar": "BOOLEAN",
    "store_id": "BIGINT",
    "tier": "VARCHAR(32)",
    "points": "BIGINT",
    "kind": "VARCHAR(16)",
    "source": "VARCHAR(200)",
    "city": "VARCHAR(100)",
    "type": "VARCHAR(50)",
    "latitude": "FLOAT",
    "longitude": "FLOAT",
}
TIME_COLUMNS = ("registered_at", "updated_at", "created_at", "occurred_at")


def temp_columns(store: BulkStore, names: list[str]) -> dict[str, str]:
    """SQL types of a staging table's columns; times are text on SQLite, as UtcDateTime keeps."""
    time_type = "TEXT" if store.dialect == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    return {name: time_type if name in TIME_COLUMNS else SQL_TYPES[name] for name in names}


def stage(store: BulkStore, table: str, frame: pl.DataFrame) -> None:
    """Puts `frame` in a fresh temporary table of the same column names."""
    store.create_temp(table, temp_columns(store, frame.columns))
    store.append(table, frame)


def store_refs(*, store: BulkStore) -> pl.DataFrame:
    """Every store's id under its code and under its name (codes first), as `ref`, `store_id`."""
    stores = store.frame(
        "SELECT id, code, name FROM stores ORDER BY id",
        schema={"id": pl.Int64, "code": pl.String, "name": pl.String},
    )
    refs = pl.concat(
        [
            stores.select(pl.col("code").alias("ref"), pl.col("id").alias("store_id")),
            stores.select(pl.col("name").alias("ref"), pl.col("id").alias("store_id")),
        ]
    )
    return refs.unique("ref", keep="first", maintain_order=True)


def match_members(*, store: BulkStore, keys: pl.DataFrame) -> pl.DataFrame:
    """Stored members sharing a phone or a code with `keys` (`grp`, `phone`, `code`)."""
    columns = ", ".join(f"m.{name}" for name in MEMBER_COLUMNS)
    found = store.frame(
        " UNION ".join(
            f"SELECT {columns} FROM {key_rows(store)} JOIN members m ON m.{key} = k.value"
            for key in ("phone", "code")
        ),
        (keys_param(store, keys["phone"]), keys_param(store, keys["code"])),
        schema=MEMBER_COLUMNS,
    )
    return pl.concat(
        [
            keys.select("grp", key).join(found, on=key).select("grp", *MEMBER_COLUMNS)
            for key in ("phone", "code")
        ]
    ).unique(maintain_order=True)


def insert_members(*, store: BulkStore, members: pl.DataFrame) -> pl.Series:
    """Inserts new members (columns named as the table's); returns their ids, in order."""
    ids = reserve_ids(store, "members", members.height)
    store.append("members", members.with_columns(ids))
    return ids


def copy_staged_members(
    *,
    store: BulkStore,
    staged: str,
    columns: Sequence[str],
    groups: pl.Series,
    every: bool,
    now: datetime,
) -> pl.Series:
    """Inserts new members from a staged table (SQLite; `tidings.imports.staging`) holding
    `grp` and the stored `columns`: the rows of `groups` (`every`: all the table holds), in
    the table's order. Returns their ids, in that order: the ids SQLite gives rows appended
    after the highest one."""
    ids = reserve_ids(store, "members", groups.len())
    params = [utc_text(now), utc_text(now)]
    keep = ""
    if not every:
        keep = f" WHERE grp IN (SELECT value FROM {key_rows(store, 'BIGINT')})"
        params.append(keys_param(store, groups))
    values = ", ".join("COALESCE(points, 0)" if name == "points" else name for name in columns)
    written = store.execute(
        f"INSERT INTO members ({', '.join(columns)}, created_at, updated_at)"
        f" SELECT {values}, ?, ? FROM {staged}{keep} ORDER BY rowid",
        params,
    )
    top = store.frame("SELECT MAX(id) FROM members", schema={"id": pl.Int64})["id"][0]
    if written != ids.len() or (ids.len() and top != ids[-1]):
        raise RuntimeError(
            f"{written} staged members went in with ids up to {top}, not {ids.len()} up to"
            f" {ids[-1]}"
        )
    store.note_found("members", ids)
    return ids


def update_members(*, store: BulkStore, members: pl.DataFrame) -> int:
    """Writes changed members (an `id` column and the columns to set) in one statement."""
    if members.height == 0:
        return 0
    store.check_references("members", members)
    stage(store, "import_member_updates", members)
    assignments = ", ".join(f"{name} = u.{name}" for name in members.columns if name != "id")
    return store.execute(
        f"UPDATE members SET {assignments} FROM import_member_updates u WHERE members.id = u.id"
    )


def record_consent(
    *, store: BulkStore, events: pl.DataFrame, new_members: pl.Series | None = None
) -> int:
    """Appends marketing consent events that change a member's latest consent.

    An event older than the member's latest one is not recorded: the ledger knows better
    (an opt-out by SMS reply outranks an old registration form). Members in `new_members`
    were created by this same write and have no ledger to read yet.
    """
    if events.height == 0:
        return 0
    known = events
    if new_members is not None:
        known = events.filter(~pl.col("member_id").is_in(new_members.implode()))
    ledger = store.frame(
        "SELECT e.member_id, e.kind, e.occurred_at, e.id"
        f" FROM {key_rows(store, 'BIGINT')} JOIN consent_events e ON e.member_id = k.value"
        " WHERE e.topic = 'marketing'",
        (keys_param(store, known["member_id"]),),
        schema={"member_id": pl.Int64, "kind": pl.String, "occurred_at": UTC_TIME, "id": pl.Int64},
    )
    latest = (
        ledger.sort("occurred_at", "id")
        .group_by("member_id")
        .agg(
            pl.col("kind").last().alias("latest_kind"),
            pl.col("occurred_at").last().alias("latest_at"),
        )
    )
    joined = events.join(latest, on="member_id", how="left")
    changes = joined.filter(
        pl.col("latest_kind").is_null()
        | (
            (pl.col("latest_kind") != pl.col("kind"))
            & (pl.col("occurred_at") >= pl.col("latest_at"))
        )
    )
    return store.append("consent_events", consent_rows(changes))


def consent_rows(events: pl.DataFrame) -> pl.DataFrame:
    """Marketing consent events (`member_id`, `kind`, `source`, `occurred_at`, `created_at`)
    as the consent_events rows `record_consent` appends."""
    topic = pl.lit("marketing").alias("topic")
    return events.select("member_id", "kind", topic, "source", "occurred_at", "created_at")


def upsert_stores(*, store: BulkStore, stores: pl.DataFrame) -> tuple[int, int]:
    """Inserts new stores and updates changed ones by code; returns (inserted, updated)."""
    columns = ["code", "name", "city", "type", "latitude", "longitude"]
    current = store.frame(
        f"SELECT id, {', '.join(columns)} FROM stores",
        schema={"id": pl.Int64, **{name: stores.schema[name] for name in columns}},
    )
    joined = stores.join(current, on="code", how="left", suffix="_old")
    new = joined.filter(pl.col("id").is_null()).select(columns)
    differs = pl.any_horizontal(
        pl.col(name).ne_missing(pl.col(f"{name}_old")) for name in columns[1:]
    )
    changed = joined.filter(pl.col("id").is_not_null() & differs).select("id", *columns[1:])
    store.append("stores", new.with_columns(created_at=pl.lit(_now(), dtype=UTC_TIME)))
    if changed.height:
        stage(store, "import_store_updates", changed)
        assignments = ", ".join(f"{name} = u.{name}" for name in columns[1:])
        store.execute(
            f"UPDATE stores SET {assignments} FROM import_store_updates u WHERE stores.id = u.id"
        )
    return new.height, changed.height


def _now() -> Any:
    from tidings import clock

    return clock.now()


def find_member(*, db_session: Session, key: str, region: str) -> Member | None:
    """Finds a member by phone (any common dressing) or by member code."""
    from tidings.members.phone import classify

    phone, _status, _reason = classify(key, region=region)
    condition = (
        Member.code == key if phone is None else or_(Member.phone == phone, Member.code == key)
    )
    return db_session.scalars(select(Member).where(condition).limit(1)).first()


def latest_consent(*, db_session: Session, member_id: int) -> ConsentKind | None:
    """The member's latest marketing consent, or None when the ledger has nothing."""
    event = db_session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.member_id == member_id, ConsentEvent.topic == "marketing")
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc())
        .limit(1)
    ).first()
    return event.kind if event else None


def member_view(*, db_session: Session, member: Member) -> dict[str, Any]:
    """The member as `tidings member show` prints it."""
    store_code = db_session.get(Store, member.store_id).code if member.store_id else None  # type: ignore[union-attr]
    consent = latest_consent(db_session=db_session, member_id=member.id)
    return {
        "member_code": member.code,
        "phone": member.phone,
        "phone_status": str(member.phone_status),
        "name": member.name,
        "gender": member.gender,
        "birthday": member.birthday.isoformat() if member.birthday else None,
        "birthday_is_lunar": member.birthday_is_lunar,
        "store_code": store_code,
        "tier": member.tier,
        "points": member.points,
        "consent": None
        if consent is None
        else ("opted_in" if consent == ConsentKind.OPT_IN else "opted_out"),
        "registered_at": member.registered_at.isoformat() if member.registered_at else None,
        "tags": member.tags or [],
    }
