"""Operations on the points ledger: opening balances, accrual from orders, expiry,
redemption for a coupon or a gift, and a member's statement.

The ledger is the truth; `members.points` is kept equal to the sum of what is left in a
member's lots (what templates and segments read as `points`). Functions take a session and
never commit; bulk steps move Polars frames through `tidings.bulk.BulkStore`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore, wide_page_cache
from tidings.config import Settings, get_settings
from tidings.db import utc_text
from tidings.loyalty import points
from tidings.loyalty.coupons import CouponTerms, issue
from tidings.loyalty.models import LotKind, PointsLot
from tidings.members.models import Member
from tidings.orders import reactions

UTC_TIME = points.UTC_TIME
WRITE_CACHE_KIB = 512 * 1024  # SQLite page cache while a whole import's lots are written
LOT_SCHEMA: dict[str, Any] = {
    "id": pl.Int64,
    "member_id": pl.Int64,
    "remaining": pl.Int64,
    "expires_at": UTC_TIME,
}


class RedemptionRefused(ValueError):
    """A redemption cannot be made; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Redemption:
    """What a redemption spent and the coupon it issued."""

    member_id: int
    points: int
    coupon_code: str
    value_cents: int
    gift: str | None
    valid_until: datetime | None
    balance: int


def _at(store: BulkStore, moment: datetime) -> Any:
    """A time as a query parameter of this store (SQLite keeps UTC text)."""
    return utc_text(moment) if store.dialect == "sqlite" else moment


def _stage_ids(store: BulkStore, table: str, frame: pl.DataFrame) -> None:
    store.create_temp(table, dict.fromkeys(frame.columns, "BIGINT"))
    store.append(table, frame)


def _insert_lots(
    store: BulkStore, lots: pl.DataFrame, *, now: datetime, note: str | None, verb: str = "INSERT"
) -> int:
    """Appends ledger entries of one kind, by order id (then member): the order key's index
    and the orders' foreign-key lookups then go in sequence, which costs SQLite less than
    filling the member index in sequence. Returns how many went in."""
    return _insert_rows(store, _lot_rows(lots, now=now, note=note), verb=verb)


def _lot_rows(lots: pl.DataFrame, *, now: datetime, note: str | None) -> pl.DataFrame:
    """Ledger entries as points_lots rows, by order id (then member): see `_insert_lots`."""
    rows = lots.select(points.LOT_COLUMNS)
    return rows.sort("order_id", "member_id", "expires_at", nulls_last=True).with_columns(
        pl.lit(note, dtype=pl.String).alias("note"),
        pl.lit(now, dtype=UTC_TIME).alias("created_at"),
    )


def _insert_rows(store: BulkStore, lots: pl.DataFrame, *, verb: str = "INSERT") -> int:
    """Appends points_lots rows (`_lot_rows`); returns how many went in."""
    if store.dialect != "sqlite" or lots.height == 0:
        return store.ingest("points_lots", lots)
    # SQLite: a wide page cache holds the indexes while a whole import's lots go in.
    with wide_page_cache(store.session, WRITE_CACHE_KIB):
        return store.append("points_lots", lots, verb=verb)


def _add_to_balances(store: BulkStore, deltas: pl.DataFrame) -> None:
    """Adds each member's `points` (a signed change) to members.points."""
    if deltas.height == 0:
        return
    # In member order, the update walks the members' table from one end to the other.
    _stage_ids(store, "loyalty_deltas", deltas.select("member_id", "points").sort("member_id"))
    store.execute(
        "UPDATE members SET points = members.points + d.points"
        " FROM loyalty_deltas d WHERE members.id = d.member_id"
    )


def open_ledgers(*, db_session: Session, now: datetime, member_ids: pl.Series | None = None) -> int:
    """Turns the imported balance of each member without a ledger into one OPENING lot, so
    the ledger and members.points agree; only `member_ids` when given. Returns lots made."""
    store = BulkStore(db_session)
    restrict = ""
    if member_ids is not None:
        _stage_ids(store, "loyalty_members", member_ids.unique().to_frame("member_id"))
        restrict = " AND m.id IN (SELECT member_id FROM loyalty_members)"
    balances = store.frame(
        "SELECT m.id, m.points FROM members m WHERE m.points > 0 AND m.erased_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM points_lots l WHERE l.member_id = m.id)" + restrict,
        schema={"member_id": pl.Int64, "points": pl.Int64},
    )
    months = get_settings().points_expiry_months
    lots = points.opening_lots(balances, now=now, expiry_months=months)
    return _insert_lots(store, lots, now=now, note="imported balance")


def open_new_ledgers(*, db_session: Session, balances: pl.DataFrame, now: datetime) -> int:
    """Opens the ledgers of members an import just created (`member_id`, `points`): each
    positive balance becomes one OPENING lot, as `open_ledgers` does, without reading the
    members back. Returns lots made."""
    return _insert_rows(BulkStore(db_session), new_ledger_lots(balances, now=now))


def new_ledger_lots(balances: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """The rows of points_lots that `open_new_ledgers` writes for these balances."""
    months = get_settings().points_expiry_months
    lots = points.opening_lots(balances, now=now, expiry_months=months)
    return _lot_rows(lots, now=now, note="imported balance")


def settle_imported_balances(*, db_session: Session, member_ids: pl.Series, now: datetime) -> None:
    """After members were imported: a balance without a ledger opens one; a balance that
    differs from the member's ledger is recorded as an ADJUSTMENT (a lot when it adds, lots
    drawn expiring first when it takes), so the ledger and members.points agree."""
    open_ledgers(db_session=db_session, now=now, member_ids=member_ids)
    store = BulkStore(db_session)
    lots = store.frame(
        "SELECT l.id, l.member_id, l.remaining, l.expires_at FROM points_lots l"
        " JOIN loyalty_members k ON k.member_id = l.member_id WHERE l.remaining > 0",
        schema=LOT_SCHEMA,
    )
    imported = store.frame(
        "SELECT m.id, m.points FROM members m JOIN loyalty_members k ON k.member_id = m.id"
        " WHERE EXISTS (SELECT 1 FROM points_lots l WHERE l.member_id = m.id)",
        schema={"member_id": pl.Int64, "points": pl.Int64},
    )
    balances = lots.group_by("member_id").agg(pl.col("remaining").sum().alias("balance"))
    months = get_settings().points_expiry_months
    changes = points.adjustments(imported, balances, now=now, expiry_months=months)
    if changes.height == 0:
        return
    taken = changes.filter(pl.col("points") < 0).select("member_id", -pl.col("points"))
    drawn = points.draw_lots(lots, taken)
    store.execute_rows(
        "UPDATE points_lots SET remaining = remaining - ? WHERE id = ?", drawn.select("drawn", "id")
    )
    _insert_lots(store, changes, now=now, note="imported balance changed")
    store.execute(
        "UPDATE members SET points = (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lots l"
        " WHERE l.member_id = members.id) WHERE id IN (SELECT member_id FROM loyalty_members)"
    )


def _insert_accruals(store: BulkStore, lots: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """Writes accrual lots, leaving out orders that another batch credited meanwhile (one
    accrual per order). Returns the `member_id, points` written."""
    shape = {"member_id": pl.Int64, "points": pl.Int64}
    if store.dialect == "sqlite":
        written = _insert_lots(store, lots, now=now, note=None, verb="INSERT OR IGNORE")
        inserted = lots.select(list(shape))
        if written < lots.height:
            # One writer at a time makes this a leftover only: read back what went in.
            _stage_ids(store, "loyalty_orders", lots.select("order_id"))
            inserted = store.frame(
                "SELECT member_id, points FROM points_lots WHERE kind = 'accrual'"
                " AND created_at = ? AND order_id IN (SELECT order_id FROM loyalty_orders)",
                (utc_text(now),),
                schema=shape,
            )
    else:
        columns = ", ".join(points.LOT_COLUMNS)
        types = ["BIGINT", "VARCHAR(16)", "BIGINT", "BIGINT", "BIGINT", *["TIMESTAMPTZ"] * 2]
        store.create_temp("loyalty_accruals", dict(zip(points.LOT_COLUMNS, types, strict=True)))
        store.ingest("loyalty_accruals", lots.select(points.LOT_COLUMNS))
        # Another batch crediting the same orders makes this one wait, then skip them: the
        # balances grow by what this statement inserted, never by what it left out.
        inserted = store.frame(
            f"INSERT INTO points_lots ({columns}, created_at) SELECT {columns}, ?"
            " FROM loyalty_accruals ORDER BY order_id"
            " ON CONFLICT (kind, order_id) DO NOTHING RETURNING member_id, points",
            (now,),
            schema=shape,
        )
    return inserted


def accrue_orders(
    *,
    db_session: Session,
    now: datetime,
    first_order_id: int = 0,
    since: datetime | None = None,
) -> dict[str, int]:
    """Gives every order from `first_order_id` on (placed at or after `since`) that has not
    earned yet its lot, at its member's tier rate (each order once, even when two batches
    credit it at the same moment: re-running changes nothing), and records the reactions
    those orders are owed (`tidings.orders.reactions`). Returns the orders credited and the
    points they earned."""
    store = BulkStore(db_session)
    placed = "" if since is None else " AND o.ordered_at >= ?"
    orders = store.frame(
        "SELECT o.id, o.member_id, o.ordered_at, o.amount_cents FROM orders o WHERE o.id >= ?"
        + placed
        + " AND NOT EXISTS (SELECT 1 FROM points_lots l"
        " WHERE l.kind = 'accrual' AND l.order_id = o.id)",
        (first_order_id,) if since is None else (first_order_id, _at(store, since)),
        schema={
            "order_id": pl.Int64,
            "member_id": pl.Int64,
            "ordered_at": UTC_TIME,
            "amount_cents": pl.Int64,
        },
    )
    inserted = _credit(store, orders, now=now)
    if inserted.height:  # orders an import stopped before crediting: no reaction ran either
        first, last = orders.select(first=pl.min("order_id"), last=pl.max("order_id")).row(0)
        reactions.owe(db_session, first_order_id=first, last_order_id=last)
    return {"orders": inserted.height, "points": int(inserted["points"].sum())}


CREDITED = {"member_id": pl.Int64, "points": pl.Int64}  # one accrual lot written


def accrue_imported(
    *,
    db_session: Session,
    chunks: Iterable[pl.DataFrame],
    member_ids: pl.Series,
    now: datetime,
    ledgers_open: bool = False,
) -> dict[str, int]:
    """Gives orders an import just wrote (`order_id, member_id, ordered_at, amount_cents`,
    from the import's own frames, a chunk at a time) their lots, as `accrue_orders` would,
    without reading the orders back. An order credited meanwhile (by another import) is left
    out: each order earns once. `member_ids` are the orders' members, whose tiers are read
    once for all chunks. The members' balances grow once, after the last chunk: a member's
    row is rewritten once however many chunks hold their orders. `ledgers_open` says the
    import opened its members' ledgers already (`open_ledgers`). Returns the orders credited
    and the points they earned."""
    store = BulkStore(db_session)
    tiers = _member_tiers(store, member_ids)
    columns = ("order_id", "member_id", "ordered_at", "amount_cents")
    earned = [
        _credit(
            store,
            orders.select(columns),
            tiers=tiers,
            now=now,
            ledgers_open=ledgers_open,
            balances=False,
        )
        for orders in chunks
    ]
    inserted = pl.concat(earned) if earned else pl.DataFrame(schema=CREDITED)
    _add_to_balances(store, inserted.group_by("member_id").agg(pl.col("points").sum()))
    return {"orders": inserted.height, "points": int(inserted["points"].sum())}


def _member_tiers(store: BulkStore, member_ids: pl.Series) -> pl.DataFrame:
    """Each member's tier (`member_id`, `tier`): the profile's, else the imported one."""
    _stage_ids(store, "loyalty_members", member_ids.unique().to_frame("member_id"))
    if store.dialect != "sqlite":
        # Overlapping batches take their members in one order: neither opens a ledger twice.
        store.execute(
            "SELECT id FROM members WHERE id IN (SELECT member_id FROM loyalty_members)"
            " ORDER BY id FOR UPDATE"
        )
    return store.frame(
        "SELECT k.member_id, COALESCE(p.tier, m.tier, '') FROM loyalty_members k"
        " JOIN members m ON m.id = k.member_id LEFT JOIN profiles p ON p.member_id = k.member_id",
        schema={"member_id": pl.Int64, "tier": pl.String},
    )


def _credit(
    store: BulkStore,
    orders: pl.DataFrame,
    *,
    now: datetime,
    tiers: pl.DataFrame | None = None,
    ledgers_open: bool = False,
    balances: bool = True,
) -> pl.DataFrame:
    """Writes the accrual lots of `orders` at their members' tier rates (`tiers`, read here
    when not given) and, unless told not to (`balances`), adds them to the members'
    balances. Returns the lots written (`member_id`, `points`)."""
    settings = get_settings()
    rates = points.parse_rates(settings.points_per_yuan)
    if orders.height == 0:
        return pl.DataFrame(schema=CREDITED)
    if tiers is None:
        tiers = _member_tiers(store, orders["member_id"])
    lots = points.accrual_lots(
        orders.join(tiers, on="member_id", how="left"),
        rates=rates,
        expiry_months=settings.points_expiry_months,
    )
    if lots.height == 0:
        return pl.DataFrame(schema=CREDITED)
    # An imported balance becomes its opening lot before the first accrual adds to it.
    if not ledgers_open:
        open_ledgers(db_session=store.session, now=now, member_ids=lots["member_id"])
    inserted = _insert_accruals(store, lots, now=now)
    if balances:
        _add_to_balances(store, inserted.group_by("member_id").agg(pl.col("points").sum()))
    return inserted


def expire(*, db_session: Session, now: datetime) -> dict[str, int]:
    """Writes off what is left of lots past their date: one EXPIRY entry per member."""
    store = BulkStore(db_session)
    # Two workers' housekeepers may run this at once: on PostgreSQL the second waits for
    # the first's lots and then finds them empty (SQLite lets one writer at a time).
    locked = "" if store.dialect == "sqlite" else " FOR UPDATE"
    lots = store.frame(
        "SELECT id, member_id, remaining, expires_at FROM points_lots"
        " WHERE remaining > 0 AND expires_at <= ?" + locked,
        (_at(store, now),),
        schema=LOT_SCHEMA,
    )
    totals = points.expired_totals(lots, now=now)
    if totals.height == 0:
        return {"members": 0, "lots": 0, "points": 0}
    _stage_ids(store, "loyalty_expired", lots.select("id"))
    store.execute(
        "UPDATE points_lots SET remaining = 0 WHERE id IN (SELECT id FROM loyalty_expired)"
    )
    _insert_lots(store, points.expiry_entries(totals, now=now), now=now, note="expired")
    _add_to_balances(store, totals.select("member_id", -pl.col("points")))
    return {
        "members": totals.height,
        "lots": int(totals["lots"].sum()),
        "points": int(totals["points"].sum()),
    }


def live_lots(*, db_session: Session, member_id: int, now: datetime) -> pl.DataFrame:
    """A member's lots that still hold points and have not expired, expiring first first."""
    store = BulkStore(db_session)
    return store.frame(
        "SELECT id, member_id, remaining, expires_at FROM points_lots"
        " WHERE member_id = ? AND remaining > 0 AND (expires_at IS NULL OR expires_at > ?)"
        " ORDER BY expires_at, id",
        (member_id, _at(store, now)),
        schema=LOT_SCHEMA,
    )


def _price(wanted: int | None, gift: str | None, settings: Settings) -> tuple[int, int]:
    """The points a redemption takes and the coupon value it gives (cents)."""
    unit = settings.points_per_redemption
    if gift is not None:
        if gift not in settings.points_gifts:
            known = ", ".join(sorted(settings.points_gifts)) or "none (TIDINGS_POINTS_GIFTS)"
            raise RedemptionRefused("unknown_gift", f"no gift '{gift}'; the gifts are: {known}")
        return settings.points_gifts[gift], 0
    wanted = unit if wanted is None else wanted
    if wanted <= 0 or wanted % unit:
        raise RedemptionRefused(
            "not_whole_units",
            f"{wanted} points cannot be redeemed: redeem a multiple of {unit} points"
            f" ({unit} points = {settings.points_redemption_value_cents / 100:.2f} yuan)",
        )
    return wanted, wanted // unit * settings.points_redemption_value_cents


def redeem(
    *,
    db_session: Session,
    member_id: int,
    now: datetime,
    wanted: int | None = None,
    gift: str | None = None,
) -> Redemption:
    """Spends points (the lots expiring first first) on a coupon or a gift voucher."""
    settings = get_settings()
    member = db_session.get(Member, member_id, with_for_update=True)
    if member is None or member.erased_at is not None:
        raise RedemptionRefused("unknown_member", f"no member {member_id}")
    cost, value = _price(wanted, gift, settings)
    open_ledgers(db_session=db_session, now=now, member_ids=pl.Series([member_id]))
    lots = live_lots(db_session=db_session, member_id=member_id, now=now)
    available = int(lots["remaining"].sum())
    if available < cost:
        raise RedemptionRefused(
            "balance_short",
            f"member {member_id} has {available:,} points that have not expired;"
            f" this redemption takes {cost:,}, {cost - available:,} more than that",
        )
    coupon = issue(
        db_session=db_session,
        member_id=member_id,
        source="points",
        terms=CouponTerms(value_cents=value, valid_days=settings.points_coupon_valid_days),
        now=now,
    )
    drawn = points.draw_lots(lots, pl.DataFrame({"member_id": [member_id], "points": [cost]}))
    BulkStore(db_session).execute_rows(
        "UPDATE points_lots SET remaining = remaining - ? WHERE id = ?", drawn.select("drawn", "id")
    )
    db_session.add(
        PointsLot(
            member_id=member_id,
            kind=LotKind.REDEMPTION,
            points=-cost,
            remaining=0,
            coupon_id=coupon.id,
            occurred_at=now,
            note=f"gift {gift}" if gift else "coupon",
        )
    )
    member.points -= cost
    db_session.flush()
    db_session.refresh(member)
    return Redemption(
        member_id=member_id,
        points=cost,
        coupon_code=coupon.code,
        value_cents=value,
        gift=gift,
        valid_until=coupon.valid_until,
        balance=member.points,
    )


def statement(*, db_session: Session, member_id: int, now: datetime) -> dict[str, Any]:
    """A member's balance, points expiring soon and every ledger entry, newest first."""
    settings = get_settings()
    member = db_session.get(Member, member_id)
    if member is None:
        raise RedemptionRefused("unknown_member", f"no member {member_id}")
    store = BulkStore(db_session)
    entries = store.frame(
        "SELECT id, kind, points, remaining, occurred_at, expires_at, order_id, coupon_id, note"
        " FROM points_lots WHERE member_id = ? ORDER BY occurred_at DESC, id DESC",
        (member_id,),
        schema={
            "id": pl.Int64,
            "kind": pl.String,
            "points": pl.Int64,
            "remaining": pl.Int64,
            "occurred_at": UTC_TIME,
            "expires_at": UTC_TIME,
            "order_id": pl.Int64,
            "coupon_id": pl.Int64,
            "note": pl.String,
        },
    )
    soon = points.expiring_soon(
        entries.with_columns(pl.lit(member_id).alias("member_id")),
        now=now,
        days=settings.points_expiring_days,
        timezone=settings.default_timezone,
    )
    live = entries.filter(
        (pl.col("remaining") > 0) & (pl.col("expires_at").is_null() | (pl.col("expires_at") > now))
    )
    return {
        "member_id": member_id,
        "balance": member.points,
        "available": int(live["remaining"].sum()),
        "expiring": int(soon["points_expiring"].sum()),
        "expiring_days": settings.points_expiring_days,
        "expiry_date": soon["points_expiry_date"].min() if soon.height else None,
        "entries": entries.to_dicts(),
    }


def expiring_fields(*, db_session: Session, now: datetime) -> pl.DataFrame:
    """`member_id, points_expiring, points_expiry_date` of every member with points expiring
    within TIDINGS_POINTS_EXPIRING_DAYS, read in bulk."""
    settings = get_settings()
    store = BulkStore(db_session)
    horizon = now + timedelta(days=settings.points_expiring_days)
    lots = store.frame(
        "SELECT member_id, remaining, expires_at FROM points_lots"
        " WHERE remaining > 0 AND expires_at > ? AND expires_at <= ?",
        (_at(store, now), _at(store, horizon)),
        schema={"member_id": pl.Int64, "remaining": pl.Int64, "expires_at": UTC_TIME},
    )
    return points.expiring_soon(
        lots, now=now, days=settings.points_expiring_days, timezone=settings.default_timezone
    )
