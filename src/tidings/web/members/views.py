"""Members: search by phone, code, name or #tag; a member's page; the export of one member's
data and their erasure, both audited. A store manager sees only their store's members."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tidings.accounts.models import Role
from tidings.audit import service as audit
from tidings.config import get_settings
from tidings.http import DbSession
from tidings.members.card import member_card
from tidings.members.models import Member
from tidings.members.privacy import MemberErased, erase_member, export_member
from tidings.members.search import search_members
from tidings.web.rendering import PAGE_SIZE, is_htmx, render
from tidings.web.security import CsrfChecked, CurrentViewer, NotFound, Viewer

router = APIRouter(include_in_schema=False)


def visible_member(db_session: DbSession, viewer: Viewer, member_id: int) -> Member:
    """The member, if this person may see them; otherwise not found (nothing is revealed)."""
    member = db_session.get(Member, member_id)
    scope = viewer.store_scope
    if member is None or (scope is not None and member.store_id != scope):
        raise NotFound(f"no member {member_id} among the members you can see")
    return member


@router.get("/members")
def members(
    request: Request, viewer: CurrentViewer, db_session: DbSession, q: str = "", page: int = 1
) -> Response:
    """Lists members matching the search, one page at a time."""
    found = search_members(
        db_session=db_session,
        query=q,
        region=get_settings().default_region,
        store_id=viewer.store_scope,
        page=page,
        page_size=PAGE_SIZE,
    )
    name = "members/templates/rows.html" if is_htmx(request) else "members/templates/list.html"
    return render(request, name, viewer=viewer, found=found, q=q)


@router.get("/members/{member_id}")
def member_page(
    request: Request, member_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows one member: profile, points and coupons, timeline, consent history."""
    member = visible_member(db_session, viewer, member_id)
    card = member_card(db_session=db_session, member=member)
    return render(request, "members/templates/member.html", viewer=viewer, **card)


@router.get("/members/{member_id}/export")
def export(member_id: int, viewer: CurrentViewer, db_session: DbSession) -> Response:
    """Downloads everything kept about the member as JSON; audited."""
    viewer.require(Role.MARKETER, Role.AGENT, Role.STORE_MANAGER)
    member = visible_member(db_session, viewer, member_id)
    try:
        data = export_member(db_session=db_session, member=member)
    except MemberErased as error:
        raise NotFound(str(error)) from error
    audit.record(
        db_session=db_session,
        actor=viewer.name,
        action="member.export",
        subject=f"member:{member_id}",
    )
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    disposition = f'attachment; filename="member-{member_id}.json"'
    return Response(
        body, media_type="application/json", headers={"Content-Disposition": disposition}
    )


@router.post("/members/{member_id}/erase", dependencies=[CsrfChecked])
def erase(member_id: int, viewer: CurrentViewer, db_session: DbSession) -> Response:
    """Erases the member's personal data (admins only); audited."""
    viewer.require()
    member = visible_member(db_session, viewer, member_id)
    try:
        erase_member(db_session=db_session, member=member, source=f"console:{viewer.name}")
    except MemberErased as error:
        raise NotFound(str(error)) from error
    audit.record(
        db_session=db_session,
        actor=viewer.name,
        action="member.erase",
        subject=f"member:{member_id}",
    )
    return RedirectResponse(f"/members/{member_id}", status_code=303)
