"""REST endpoints of this domain: the member batch upsert, search, one member, their timeline,
the export of their data and their erasure (both audited)."""

from __future__ import annotations

from typing import Any

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audit import service as audit
from tidings.bulk import BulkStore
from tidings.config import get_settings
from tidings.http import Authenticated, DbSession, Page, PagingQuery, RowId, require_scope
from tidings.imports import ImportResult
from tidings.inbound.timeline import DEFAULT_LIMIT, member_timeline
from tidings.members.importer import MemberBatches, members_from_records
from tidings.members.models import Member, Store
from tidings.members.privacy import MemberErased, erase_member, export_member
from tidings.members.schemas import MAX_BATCH_ROWS, BatchResult, MembersBatch, RowError
from tidings.members.schemas import Member as MemberOut
from tidings.members.search import search_members
from tidings.members.service import member_view

router = APIRouter(tags=["members"])


def check_batch_size(rows: int, what: str) -> None:
    """Answers 413 for a batch beyond the limit, saying what to do."""
    if rows > MAX_BATCH_ROWS:
        raise HTTPException(
            413, f"send at most {MAX_BATCH_ROWS:,} {what} per request (got {rows:,}); split it"
        )


def batch_result(result: ImportResult, problems: pl.DataFrame) -> BatchResult:
    """The counts and one error per rejected row (warnings are not errors)."""
    rejected = problems.filter("rejected") if problems.height else problems
    errors = [
        RowError(index=int(row["line"]), reason=str(row["reason"]))
        for row in rejected.iter_rows(named=True)
    ]
    return BatchResult(
        rows=result.rows,
        inserted=result.inserted,
        updated=result.updated,
        merged_duplicates=result.merged_duplicates,
        rejected=result.rejected,
        errors=errors,
    )


@router.post(
    "/members:batch", response_model=BatchResult, dependencies=[require_scope("members:write")]
)
def members_batch(body: MembersBatch, db_session: DbSession, api_key: Authenticated) -> BatchResult:
    """Upserts up to 10,000 members with the cleaning and duplicate rules of the CSV import."""
    check_batch_size(len(body.members), "members")
    batches = MemberBatches(store=BulkStore(db_session), source=f"api:{api_key.name}")
    frame = members_from_records([member.model_dump() for member in body.members])
    problems = batches.add(frame)
    return batch_result(batches.result, problems)


@router.get("/members/{member_id}/timeline", dependencies=[require_scope("members:read")])
def timeline(
    member_id: RowId,
    db_session: DbSession,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """A member's orders, messages, replies and tickets, newest first."""
    if db_session.get(Member, member_id) is None:
        raise HTTPException(404, f"no member {member_id}")
    return member_timeline(db_session=db_session, member_id=member_id, limit=limit)


def _found(db_session: Session, member_id: int) -> Member:
    member = db_session.get(Member, member_id)
    if member is None:
        raise HTTPException(404, f"no member {member_id}; GET /api/v1/members?q=... finds one")
    return member


def _shown(db_session: Session, member: Member) -> MemberOut:
    return MemberOut(id=member.id, **member_view(db_session=db_session, member=member))


@router.get(
    "/members", response_model=Page[MemberOut], dependencies=[require_scope("members:read")]
)
def list_members(
    request: Request,
    db_session: DbSession,
    paging: PagingQuery,
    q: str = Query("", max_length=100, description="A phone, member code, name's start or #tag."),
    store: str | None = Query(None, max_length=64, description="Only this store's members."),
) -> Page[MemberOut]:
    """Members matching the search (all when `q` is empty), newest first, a page at a time."""
    store_id = None
    if store is not None:
        store_id = db_session.scalar(select(Store.id).where(Store.code == store))
        if store_id is None:
            raise HTTPException(404, f"no store has the code '{store}'")
    found = search_members(
        db_session=db_session,
        query=q,
        region=get_settings().default_region,
        store_id=store_id,
        page=paging.page,
        page_size=paging.per_page,
    )
    return Page[MemberOut](
        items=[_shown(db_session, member) for member in found.members],
        page=paging.page,
        per_page=paging.per_page,
        next=paging.next_link(request, found.has_more),
    )


@router.get(
    "/members/{member_id}",
    response_model=MemberOut,
    dependencies=[require_scope("members:read")],
)
def get_member(member_id: RowId, db_session: DbSession) -> MemberOut:
    """One member: codes, phone, store, tier, points, consent and tags."""
    return _shown(db_session, _found(db_session, member_id))


@router.get("/members/{member_id}/export", dependencies=[require_scope("members:read")])
def export(member_id: RowId, db_session: DbSession, api_key: Authenticated) -> dict[str, Any]:
    """Everything kept about the member (profile, consent, points, coupons, timeline); audited."""
    member = _found(db_session, member_id)
    try:
        data = export_member(db_session=db_session, member=member)
    except MemberErased as error:
        raise HTTPException(410, str(error)) from error
    audit.record(
        db_session=db_session,
        actor=f"api:{api_key.name}",
        action="member.export",
        subject=f"member:{member_id}",
    )
    return data


@router.post(
    "/members/{member_id}/erase",
    response_model=MemberOut,
    dependencies=[require_scope("members:write")],
)
def erase(member_id: RowId, db_session: DbSession, api_key: Authenticated) -> MemberOut:
    """Removes the member's personal data; the phone is kept only as a suppression hash. Audited."""
    member = _found(db_session, member_id)
    try:
        erase_member(db_session=db_session, member=member, source=f"api:{api_key.name}")
    except MemberErased as error:
        raise HTTPException(410, str(error)) from error
    audit.record(
        db_session=db_session,
        actor=f"api:{api_key.name}",
        action="member.erase",
        subject=f"member:{member_id}",
    )
    return _shown(db_session, member)
