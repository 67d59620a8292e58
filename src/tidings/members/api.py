"""REST endpoints of this domain: the member batch upsert and a member's timeline."""

from __future__ import annotations

from typing import Any

import polars as pl
from fastapi import APIRouter, HTTPException, Query

from tidings.db import BulkStore
from tidings.http import Authenticated, DbSession
from tidings.imports import ImportResult
from tidings.inbound.timeline import DEFAULT_LIMIT, member_timeline
from tidings.members.importer import MemberBatches, members_from_records
from tidings.members.models import Member
from tidings.members.schemas import MAX_BATCH_ROWS, BatchResult, MembersBatch, RowError

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


@router.post("/members:batch", response_model=BatchResult)
def members_batch(body: MembersBatch, db_session: DbSession, api_key: Authenticated) -> BatchResult:
    """Upserts up to 10,000 members with the cleaning and duplicate rules of the CSV import."""
    check_batch_size(len(body.members), "members")
    batches = MemberBatches(store=BulkStore(db_session), source=f"api:{api_key.name}")
    frame = members_from_records([member.model_dump() for member in body.members])
    problems = batches.add(frame)
    return batch_result(batches.result, problems)


@router.get("/members/{member_id}/timeline")
def timeline(
    member_id: int,
    db_session: DbSession,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """A member's orders, messages, replies and tickets, newest first."""
    if db_session.get(Member, member_id) is None:
        raise HTTPException(404, f"no member {member_id}")
    return member_timeline(db_session=db_session, member_id=member_id, limit=limit)
