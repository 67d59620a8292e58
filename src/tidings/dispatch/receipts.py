"""Delivery receipts, applied in bulk, idempotently and in any order.

Every receipt is stored as received. One that names a message settles it (delivered, failed,
expired) only if the message may still move there, so a repeat or a late arrival changes
nothing. One that names no known message is kept unmatched, never dropped: it may have come
before the provider's answer was recorded, and is matched again when that answer is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Table, select, text, update
from sqlalchemy.orm import Session

from tidings.bulk import bulk_insert
from tidings.casts import UTC_TIME, utc_series
from tidings.db import is_sqlite
from tidings.dispatch.ledger import move_frame
from tidings.dispatch.models import DeliveryReceipt, Message, MessageState, ReceiptStatus, sources
from tidings.providers.base import Receipt

messages: Table = Message.__table__  # type: ignore[assignment]
receipts_table: Table = DeliveryReceipt.__table__  # type: ignore[assignment]
# A receipt reports on a message the provider took: one submitted, or one a crash left unknown.
RECEIPT_SOURCES = frozenset({MessageState.SUBMITTED, MessageState.UNKNOWN})
TARGETS = {
    ReceiptStatus.DELIVERED: MessageState.DELIVERED,
    ReceiptStatus.FAILED: MessageState.FAILED,
    ReceiptStatus.EXPIRED: MessageState.EXPIRED,
}
assert all(set(sources(target)) >= RECEIPT_SOURCES for target in TARGETS.values())
STATUSES = frozenset(status.value for status in ReceiptStatus)
REMATCH_BATCH = 5000  # unmatched receipts looked at again per housekeeping pass


MATCH_BATCH = 5000  # provider ids looked up in one statement (SQLite allows 32,766 markers)
# One array parameter, joined through the index: a prepared statement's generic plan for a
# long IN list may scan the whole table instead.
_MATCH_POSTGRES = text(
    "SELECT v.pmid, m.id FROM unnest(CAST(:pmids AS text[])) AS v(pmid)"
    " JOIN messages m ON m.provider = :provider AND m.provider_message_id = v.pmid"
)


class ReceiptError(ValueError):
    """A receipt cannot be read (an unknown status)."""


@dataclass(frozen=True, slots=True)
class ReceiptReport:
    """What applying a batch of receipts did."""

    stored: int
    matched: int
    unmatched: int


def _refuse_unknown_statuses(receipts: Sequence[Receipt]) -> None:
    """Refuses the whole batch, naming the first receipt whose status is none we know."""
    unknown = {receipt.status for receipt in receipts} - STATUSES
    if unknown:
        receipt = next(r for r in receipts if r.status in unknown)
        known = ", ".join(status.value for status in ReceiptStatus)
        raise ReceiptError(
            f"receipt for {receipt.provider_message_id!r} has status {receipt.status!r};"
            f" expected one of {known}"
        )


def _match(session: Session, receipts: Sequence[Receipt]) -> dict[tuple[str, str], int]:
    """Maps (provider, provider message id) to the message id, for the receipts given."""
    found: dict[tuple[str, str], int] = {}
    by_provider: dict[str, set[str]] = {}
    for receipt in receipts:
        by_provider.setdefault(receipt.provider, set()).add(receipt.provider_message_id)
    for provider, provider_ids in by_provider.items():
        ordered = sorted(provider_ids)
        for start in range(0, len(ordered), MATCH_BATCH):
            batch = ordered[start : start + MATCH_BATCH]
            rows: Iterable[Any]
            if is_sqlite(session):
                rows = _match_sqlite(session, provider, batch)
            else:
                rows = session.execute(_MATCH_POSTGRES, {"provider": provider, "pmids": batch})
            found.update(((provider, pmid), message_id) for pmid, message_id in rows)
    return found


def _match_sqlite(session: Session, provider: str, pmids: list[str]) -> list[Any]:
    """(provider message id, message id) pairs, straight from the driver: rendering a
    statement with thousands of bound values cost SQLAlchemy more than SQLite's lookup."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    markers = ", ".join("?" * len(pmids))
    sql = (
        "SELECT provider_message_id, id FROM messages"
        f" WHERE provider = ? AND provider_message_id IN ({markers})"
    )
    return raw.execute(sql, [provider, *pmids]).fetchall()


def _settle(session: Session, frame: pl.DataFrame, now: datetime) -> None:
    """Moves messages to the state their receipts report, earliest report first; `frame` holds
    the matched receipts' message_id, status, error_code and occurred_at."""
    guard = " AND state IN (" + ", ".join(f"'{s}'" for s in sorted(RECEIPT_SOURCES)) + ")"
    # A stable sort keeps the first of equal times, as they came.
    earliest = frame.sort("occurred_at", maintain_order=True).unique(
        "message_id", keep="first", maintain_order=True
    )
    for status, target in TARGETS.items():
        chosen = earliest.filter(pl.col("status") == status.value)
        at = pl.col("occurred_at")
        delivered = [at.alias("delivered_at")] if status is ReceiptStatus.DELIVERED else []
        move_frame(
            session,
            target=target,
            frame=chosen.select(
                *delivered, at.alias("final_at"), "error_code", pl.col("message_id").alias("id")
            ),
            now=now,
            where=guard,
            clear_lease=True,
        )


def _receipt_frame(
    rows: Sequence[tuple[int | None, str, str | None, datetime]],
) -> pl.DataFrame:
    """Receipts as (message id, status, error code, time) in a frame `_settle` reads."""
    return pl.DataFrame(
        rows,
        schema={
            "message_id": pl.Int64,
            "status": pl.String,
            "error_code": pl.String,
            "occurred_at": UTC_TIME,
        },
        orient="row",
    )


def apply_receipts(
    *, db_session: Session, receipts: Sequence[Receipt], now: datetime
) -> ReceiptReport:
    """Stores `receipts` and settles the messages they name."""
    if not receipts:
        return ReceiptReport(0, 0, 0)
    _refuse_unknown_statuses(receipts)
    matches = _match(db_session, receipts)
    frame = pl.DataFrame(
        {
            "provider": [r.provider for r in receipts],
            "provider_message_id": [r.provider_message_id for r in receipts],
            "status": [r.status for r in receipts],
            "error_code": [r.error_code for r in receipts],
            "occurred_at": utc_series("occurred_at", [r.occurred_at for r in receipts]),
            "message_id": [matches.get((r.provider, r.provider_message_id)) for r in receipts],
        },
        schema_overrides={"error_code": pl.String, "message_id": pl.Int64},
    ).with_columns(pl.lit(now, dtype=UTC_TIME).alias("received_at"))
    bulk_insert(db_session, "delivery_receipts", frame)
    matched = frame.filter(pl.col("message_id").is_not_null())
    _settle(db_session, matched.select("message_id", "status", "error_code", "occurred_at"), now)
    return ReceiptReport(len(receipts), matched.height, len(receipts) - matched.height)


def attach_early_receipts(
    *, db_session: Session, provider: str, provider_message_ids: Sequence[str], now: datetime
) -> int:
    """Matches receipts that came before their message's provider id was recorded."""
    if not provider_message_ids:
        return 0
    # Receipts rarely beat the provider's answer: look for them only when some are unmatched.
    unmatched = select(receipts_table.c.id).where(receipts_table.c.message_id.is_(None)).limit(1)
    if db_session.execute(unmatched).first() is None:
        return 0
    early = db_session.execute(
        select(
            receipts_table.c.id,
            receipts_table.c.provider_message_id,
            receipts_table.c.status,
            receipts_table.c.error_code,
            receipts_table.c.occurred_at,
        ).where(
            receipts_table.c.message_id.is_(None),
            receipts_table.c.provider == provider,
            receipts_table.c.provider_message_id.in_(list(provider_message_ids)),
        )
    ).all()
    if not early:
        return 0
    matches = _match(db_session, [Receipt(provider, row[1], row[2], row[4]) for row in early])
    rows = []
    for receipt_id, pmid, status, code, occurred in early:
        message_id = matches.get((provider, pmid))
        if message_id is None:
            continue
        db_session.execute(
            update(receipts_table)
            .where(receipts_table.c.id == receipt_id)
            .values(message_id=message_id)
        )
        rows.append((message_id, ReceiptStatus(status).value, code, occurred))
    _settle(db_session, _receipt_frame(rows), now)
    return len(rows)


def rematch_recent(*, db_session: Session, since: datetime, now: datetime) -> int:
    """Matches again receipts received since `since` that still name no message.

    A receipt can race the worker recording the provider's answer: on PostgreSQL each
    transaction misses the other's uncommitted row, and the worker's look for early receipts
    has already run. The worker's housekeeping calls this every little while, so such a
    receipt settles its message a moment later instead of never.
    """
    rows = db_session.execute(
        select(receipts_table.c.provider, receipts_table.c.provider_message_id)
        .where(receipts_table.c.message_id.is_(None), receipts_table.c.received_at >= since)
        .limit(REMATCH_BATCH)
    ).all()
    by_provider: dict[str, list[str]] = {}
    for provider, provider_message_id in rows:
        by_provider.setdefault(provider, []).append(provider_message_id)
    return sum(
        attach_early_receipts(
            db_session=db_session, provider=provider, provider_message_ids=pmids, now=now
        )
        for provider, pmids in by_provider.items()
    )
