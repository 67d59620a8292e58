"""Writing and reading the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.audit.models import AuditEvent


def record(
    *,
    db_session: Session,
    actor: str,
    action: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Records that `actor` did `action` to `subject`."""
    event = AuditEvent(actor=actor, action=action, subject=subject, details=details)
    db_session.add(event)
    db_session.flush()
    return event


def page(
    *, db_session: Session, offset: int, limit: int, action: str | None = None
) -> tuple[list[AuditEvent], int]:
    """One page of the log, newest first, with the total count."""
    query = select(AuditEvent)
    counting = select(func.count()).select_from(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
        counting = counting.where(AuditEvent.action == action)
    rows = db_session.scalars(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit))
    return list(rows), int(db_session.scalar(counting) or 0)
