"""The audience frame: one row per member with every field a rule can use.

`audience_frame` joins members, stores, profiles and the consent ledger (pure);
`load_audience` reads those tables in bulk and calls it; `tidings.segments.snapshot` keeps
the frame in memory per store.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine

from tidings import clock, scancopies
from tidings.config import get_settings
from tidings.loyalty.points import expiring_soon
from tidings.orders import frames
from tidings.orders.frames import order_lines
from tidings.profiles.models import Profile
from tidings.segments.fields import (
    FIELD_LIST,
    FIELDS,
    FRAME_DTYPES,
    PROFILE_COLUMNS,
    Field,
    FieldType,
)
from tidings.segments.tables import read_table, read_tables, with_types

UTC_TIME = pl.Datetime("us", "UTC")
_EMPTY_TAGS = pl.lit([], dtype=pl.List(pl.String))

# Columns read from each table, with their types (SQLite keeps times as text).
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
    "timezone": pl.String,
    "tags": pl.String,
    "erased_at": UTC_TIME,
}
STORE_COLUMNS: dict[str, Any] = {
    "id": pl.Int64,
    "code": pl.String,
    "name": pl.String,
    "city": pl.String,
    "type": pl.String,
}
CONSENT_COLUMNS: dict[str, Any] = {
    "id": pl.Int64,
    "member_id": pl.Int64,
    "kind": pl.String,
    "occurred_at": UTC_TIME,
}
# Profile fields that mean "nothing yet" rather than "unknown" for a member without a profile.
# Fields made from other columns than their own (table, column); the rest read their own.
FIELD_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "member_id": (("members", "id"),),
    "age": (("members", "birthday"),),
    "tags": (("members", "tags"), ("profiles", "tags")),
    "tier": (("members", "tier"), ("profiles", "tier")),
    "store_code": (("members", "store_id"), ("stores", "code")),
    "store_name": (("members", "store_id"), ("stores", "name")),
    "city": (("members", "store_id"), ("stores", "city")),
    "store_type": (("members", "store_id"), ("stores", "type")),
    "main_store_code": (("profiles", "main_store_id"), ("stores", "code")),
    "consent": tuple(("consent_events", column) for column in CONSENT_COLUMNS),
    "points_balance": (("members", "points"),),
    "points_expiring": (("points_lots", "remaining"), ("points_lots", "expires_at")),
    "points_expiry_date": (("points_lots", "remaining"), ("points_lots", "expires_at")),
}
POINTS_COLUMNS: dict[str, Any] = {
    "member_id": pl.Int64,
    "points_expiring": pl.Int64,
    "points_expiry_date": pl.Date,
}
PROFILE_DEFAULTS: dict[str, Any] = {
    "orders_total": 0,
    "spend_total": 0,
    "orders_90d": 0,
    "spend_90d": 0,
    "orders_365d": 0,
    "spend_365d": 0,
    "churn_risk": False,
    "lifecycle_stage": "never",
}


def local_today(timezone: str | None = None) -> date:
    """Returns today's date in the brand's timezone."""
    zone = ZoneInfo(timezone or get_settings().default_timezone)
    return clock.now().astimezone(zone).date()


def audience_frame(
    *,
    members: pl.DataFrame,
    stores: pl.DataFrame,
    profiles: pl.DataFrame,
    consent: pl.DataFrame,
    today: date | None = None,
    points: pl.DataFrame | None = None,
    fields: Collection[str] | None = None,
) -> pl.DataFrame:
    """Joins the tables into one row per member holding every field, ordered by member_id.

    `points` holds each member's points expiring soon (`tidings.loyalty.points.expiring_soon`).
    With `fields`, only those (and member_id) are made: the fields nobody asked for, such as
    the merged tags, are never computed.

    Members without a profile get zero orders and spend and lifecycle 'never'; erased
    members are left out. Tags may come as lists or as JSON text.
    """
    today = today or local_today()
    chosen = set(field_order(fields or ()))
    people = _members(members, today)
    store_rows = with_types(stores, STORE_COLUMNS).select(
        pl.col("id").alias("store_id"),
        pl.col("code").alias("store_code"),
        pl.col("name").alias("store_name"),
        "city",
        pl.col("type").alias("store_type"),
    )
    main_stores = store_rows.select(
        pl.col("store_id").alias("main_store_id"), pl.col("store_code").alias("main_store_code")
    )
    frame = (
        people.lazy()
        .join(store_rows.lazy(), on="store_id", how="left")
        .join(_profiles(profiles).lazy(), on="member_id", how="left")
        .join(main_stores.lazy(), on="main_store_id", how="left")
        .join(_consent(consent).lazy(), on="member_id", how="left")
        .join(with_types(_points(points), POINTS_COLUMNS).lazy(), on="member_id", how="left")
        .with_columns(
            pl.col("points_expiring").fill_null(0),
            pl.coalesce("profile_tier", "member_tier").alias("tier"),
            pl.concat_list(
                pl.col("member_tags").fill_null(_EMPTY_TAGS),
                pl.col("profile_tags").fill_null(_EMPTY_TAGS),
            )
            .list.unique(maintain_order=True)
            .alias("tags"),
            pl.col("consent").fill_null(False),
            *(pl.col(name).fill_null(value) for name, value in PROFILE_DEFAULTS.items()),
        )
        .select(
            pl.col(field.name).cast(FRAME_DTYPES[field.type])
            for field in FIELD_LIST
            if fields is None or field.name in chosen
        )
        .sort("member_id")
    )
    return frame.collect()


def _tags(frame: pl.DataFrame, name: str) -> pl.Expr:
    if name not in frame.columns or frame.schema[name] == pl.Null:
        return pl.lit(None, dtype=pl.List(pl.String))
    if frame.schema[name] == pl.String:
        return pl.col(name).replace("", None).str.json_decode(pl.List(pl.String))
    return pl.col(name).cast(pl.List(pl.String))


def _members(members: pl.DataFrame, today: date) -> pl.DataFrame:
    if "member_id" in members.columns and "id" not in members.columns:
        members = members.rename({"member_id": "id"})
    members = members.with_columns(_tags(members, "tags").alias("member_tags"))
    columns = {name: dtype for name, dtype in MEMBER_COLUMNS.items() if name != "tags"}
    rows = with_types(members.drop("tags", strict=False), columns)
    birthday = pl.col("birthday")
    before_birthday = (birthday.dt.month().cast(pl.Int32) * 100 + birthday.dt.day()) > (
        today.month * 100 + today.day
    )
    return rows.filter(pl.col("erased_at").is_null()).select(
        pl.col("id").alias("member_id"),
        "code",
        "phone",
        "phone_status",
        "name",
        "gender",
        "birthday",
        pl.col("birthday_is_lunar").fill_null(False),
        (today.year - birthday.dt.year() - before_birthday.cast(pl.Int32)).alias("age"),
        "store_id",
        pl.col("tier").alias("member_tier"),
        pl.col("points").fill_null(0),
        pl.col("points").fill_null(0).alias("points_balance"),
        "registered_at",
        "timezone",
        "member_tags",
    )


def _profiles(profiles: pl.DataFrame) -> pl.DataFrame:
    wanted = {
        field.name: FRAME_DTYPES[field.type]
        for field in FIELD_LIST
        if field.source == "profiles" and field.name != "main_store_code"
    }
    renamed = {
        column: name for name, column in PROFILE_COLUMNS.items() if column in profiles.columns
    }
    frame = profiles.rename(renamed)
    frame = frame.with_columns(_tags(frame, "tags").alias("profile_tags"))
    frame = with_types(
        frame.drop("tags", strict=False),
        {"member_id": pl.Int64, "main_store_id": pl.Int64, **wanted, "tier": pl.String},
    )
    names = ["member_id", "main_store_id", *(n for n in wanted if n != "tier")]
    return frame.select(*names, pl.col("tier").alias("profile_tier"), "profile_tags")


def _points(points: pl.DataFrame | None) -> pl.DataFrame:
    return pl.DataFrame(schema=POINTS_COLUMNS) if points is None else points


def _expiring_points(engine: Engine, where: str) -> pl.DataFrame:
    """Each member's points expiring within TIDINGS_POINTS_EXPIRING_DAYS, from the ledger."""
    settings = get_settings()
    lots = read_table(
        engine,
        "points_lots",
        {"member_id": pl.Int64, "remaining": pl.Int64, "expires_at": UTC_TIME},
        where=f"remaining > 0 AND expires_at IS NOT NULL AND {where}",
    )
    return expiring_soon(
        lots,
        now=clock.now(),
        days=settings.points_expiring_days,
        timezone=settings.default_timezone,
    )


def _consent(consent: pl.DataFrame) -> pl.DataFrame:
    """Each member's latest marketing consent event decides: opt-in is true."""
    frame = with_types(consent, CONSENT_COLUMNS | {"topic": pl.String})
    frame = frame.filter(pl.col("topic").fill_null("marketing") == "marketing")
    return (
        frame.sort(["member_id", "occurred_at", "id"], nulls_last=False)
        .unique(subset="member_id", keep="last", maintain_order=True)
        .select("member_id", (pl.col("kind") == "opt_in").alias("consent"))
    )


def load_audience(
    engine: Engine,
    *,
    today: date | None = None,
    fields: Collection[str] | None = None,
    member_ids: Collection[int] | None = None,
) -> pl.DataFrame:
    """Reads members, stores, profiles and consent from the store (one query each).

    With `fields`, only the table columns those fields are made from are read and only those
    fields (and member_id) are returned: a campaign reads a handful of the profile's columns.
    With `member_ids`, only those members are read (an event trigger reads a batch's members).
    """
    wanted = None if fields is None else table_columns(fields)

    def among(column: str) -> str:
        """Keeps the rows of `member_ids` (every row without them)."""
        if member_ids is None:
            return "1 = 1"
        return f"{column} IN ({', '.join(str(int(i)) for i in member_ids) or 'NULL'})"

    reads = {
        "members": (MEMBER_COLUMNS, f"erased_at IS NULL AND {among('id')}"),
        "stores": (STORE_COLUMNS, "1 = 1"),
        "profiles": (_profile_columns(), among("member_id")),
        "consent_events": (CONSENT_COLUMNS, f"topic = 'marketing' AND {among('member_id')}"),
    }
    if wanted is not None:
        reads = {
            table: ({n: t for n, t in columns.items() if n in wanted.get(table, ())}, where)
            for table, (columns, where) in reads.items()
        }
    read = read_tables(engine, reads)
    members, stores, profiles, consent = (
        read.get(table, pl.DataFrame(schema=columns))
        for table, columns in (
            ("members", MEMBER_COLUMNS),
            ("stores", STORE_COLUMNS),
            ("profiles", _profile_columns()),
            ("consent_events", CONSENT_COLUMNS),
        )
    )
    points = None
    if wanted is None or "points_lots" in wanted:
        points = _expiring_points(engine, among("member_id"))
    frame = audience_frame(
        members=members,
        stores=stores,
        profiles=profiles,
        consent=consent,
        today=today,
        points=points,
        fields=fields,
    )
    return frame if fields is None else frame.select(field_order(fields))


def field_order(fields: Collection[str]) -> list[str]:
    """member_id and the known fields among `fields`, in the audience's field order."""
    chosen = set(fields) | {"member_id"}
    return [field.name for field in FIELD_LIST if field.name in chosen]


def table_columns(fields: Collection[str]) -> dict[str, set[str]]:
    """The columns of each table that the audience fields `fields` are made from."""
    wanted: dict[str, set[str]] = {"members": {"id"}}
    for name in field_order(fields):
        for table, column in FIELD_COLUMNS.get(name, ()) or _own_column(FIELDS[name]):
            wanted.setdefault(table, set()).add(column)
    if "profiles" in wanted:
        wanted["profiles"].add("member_id")
    if "stores" in wanted:
        wanted["stores"].add("id")
    return wanted


def _own_column(field: Field) -> tuple[tuple[str, str], ...]:
    if field.source == "profiles":
        return (("profiles", PROFILE_COLUMNS.get(field.name, field.name)),)
    return (("members", field.name),)


def _profile_columns() -> dict[str, Any]:
    """The profile table's columns a field needs, as the model declares them today."""
    declared = set(Profile.__table__.columns.keys())
    wanted: dict[str, Any] = {"member_id": pl.Int64, "main_store_id": pl.Int64, "tags": pl.String}
    for field in FIELD_LIST:
        column = PROFILE_COLUMNS.get(field.name, field.name)
        if field.source == "profiles" and field.type is not FieldType.LIST:
            wanted[column] = FRAME_DTYPES[field.type]
    return {name: dtype for name, dtype in wanted.items() if name in declared}


def load_order_lines(engine: Engine) -> pl.DataFrame:
    """Reads every order line with its order's member and time (amounts in cents).

    PostgreSQL uses the shared loader `tidings.orders.frames.order_lines`; a SQLite store
    reads the orders and lines from their copies beside it but for what they lack
    (`tidings.scancopies`), the rest in child processes when there is much of it.
    """
    if engine.dialect.name != "sqlite":
        return order_lines(engine)
    read = scancopies.read_with_copies(
        engine,
        {"lines": frames.CATEGORICAL_ITEMS_SCAN, "orders": frames.ORDERS_SCAN},
        copied=("lines", "orders"),
    )
    items = read["lines"].with_columns(pl.col("sku", "category").cast(pl.String))
    return frames.join_lines(items, frames.finish_orders(read["orders"]))
