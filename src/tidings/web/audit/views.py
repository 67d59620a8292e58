"""The audit log: who signed in, exported, erased or changed what, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.audit import service as audit
from tidings.http import DbSession
from tidings.web.rendering import PAGE_SIZE, render
from tidings.web.security import CurrentViewer

router = APIRouter(include_in_schema=False)


@router.get("/audit")
def audit_log(
    request: Request, viewer: CurrentViewer, db_session: DbSession, action: str = "", page: int = 1
) -> Response:
    """Lists audited actions a page at a time (admins only)."""
    viewer.require()
    page = max(page, 1)
    events, total = audit.page(
        db_session=db_session,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        action=action or None,
    )
    return render(
        request,
        "audit/templates/audit.html",
        viewer=viewer,
        events=events,
        total=total,
        page=page,
        has_more=page * PAGE_SIZE < total,
        action=action,
    )
