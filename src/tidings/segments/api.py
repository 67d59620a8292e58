"""REST endpoints of the segments domain: saved segments, counts, parsing and the fields."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tidings.http import DbSession, problem, require_scope
from tidings.members.card import members_by_ids
from tidings.members.schemas import Member
from tidings.members.service import member_view
from tidings.segments import fields, service
from tidings.segments.jsonform import from_json, to_json
from tidings.segments.lexer import RuleError
from tidings.segments.models import Segment as SegmentRow
from tidings.segments.rules import parse
from tidings.segments.schemas import (
    CountResult,
    FieldInfo,
    ParseResult,
    RuleInput,
    SampleResult,
    Segment,
    SegmentCreate,
    SegmentUpdate,
)
from tidings.segments.tree import Rule, to_text

router = APIRouter(tags=["segments"])

RuleProblem: dict[int | str, dict[str, Any]] = {
    422: {"description": "The rule cannot be read; the position says where."}
}


def rule_problem(error: RuleError, text: str) -> JSONResponse:
    """Answers a bad rule as problem+json with its position and message."""
    return problem(
        422,
        "Invalid rule",
        str(error),
        position=error.position,
        message=error.message,
        rule=error.text or text,
    )


def _read(body: RuleInput) -> Rule:
    return parse(body.rule) if body.rule is not None else from_json(body.tree)


def _text(body: RuleInput) -> str:
    """The text a rule error's column counts in, when the error does not carry its own."""
    if body.rule is not None:
        return body.rule
    try:
        return to_text(from_json(body.tree))
    except RuleError:
        return ""


def _segment(row: SegmentRow) -> Segment:
    try:
        tree = to_json(parse(row.rule))
    except RuleError:
        tree = {}
    return Segment(
        name=row.name,
        rule=row.rule,
        tree=tree,
        description=row.description,
        size=row.last_count,
        counted_at=row.counted_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "/segments", response_model=list[Segment], dependencies=[require_scope("segments:read")]
)
def list_segments(db_session: DbSession) -> list[Segment]:
    """Lists the saved segments with their current sizes."""
    return [_segment(row) for row in service.measure(db_session=db_session)]


@router.post(
    "/segments",
    response_model=Segment,
    status_code=201,
    responses=RuleProblem,
    dependencies=[require_scope("segments:write")],
)
def create_segment(body: SegmentCreate, db_session: DbSession) -> Segment | JSONResponse:
    """Saves a new segment; 409 if the name is taken."""
    try:
        row = service.save(
            db_session=db_session,
            name=body.name,
            rule=_read(body),
            description=body.description,
            replace=False,
        )
    except RuleError as error:
        return rule_problem(error, _text(body))
    except service.SegmentExists as error:
        return problem(409, "Segment exists", str(error))
    except service.SegmentError as error:
        return problem(422, "Invalid segment", str(error))
    return _segment(row)


@router.get(
    "/segments/fields",
    response_model=list[FieldInfo],
    dependencies=[require_scope("segments:read")],
)
def list_fields() -> list[dict[str, str]]:
    """Lists every field a rule can use, with its type and meaning."""
    return fields.describe()


@router.get(
    "/segments/{name}", response_model=Segment, dependencies=[require_scope("segments:read")]
)
def get_segment(name: str, db_session: DbSession) -> Segment | JSONResponse:
    """Shows a saved segment."""
    try:
        return _segment(service.require(db_session=db_session, name=name))
    except service.SegmentNotFound as error:
        return problem(404, "Segment not found", str(error))


@router.put(
    "/segments/{name}",
    response_model=Segment,
    responses=RuleProblem,
    dependencies=[require_scope("segments:write")],
)
def update_segment(name: str, body: SegmentUpdate, db_session: DbSession) -> Segment | JSONResponse:
    """Replaces a segment's rule (and description), creating the segment if it is new."""
    try:
        row = service.save(
            db_session=db_session, name=name, rule=_read(body), description=body.description
        )
    except RuleError as error:
        return rule_problem(error, _text(body))
    except service.SegmentError as error:
        return problem(422, "Invalid segment", str(error))
    return _segment(row)


@router.delete("/segments/{name}", status_code=204, dependencies=[require_scope("segments:write")])
def delete_segment(name: str, db_session: DbSession) -> Response:
    """Deletes a segment no other segment refers to; 409 if one does."""
    try:
        service.delete(db_session=db_session, name=name)
    except service.SegmentNotFound as error:
        return problem(404, "Segment not found", str(error))
    except service.SegmentInUse as error:
        return problem(409, "Segment in use", str(error))
    return Response(status_code=204)


@router.post(
    "/segments:count",
    response_model=CountResult,
    responses=RuleProblem,
    dependencies=[require_scope("segments:read")],
)
def count_segment(body: RuleInput, request: Request) -> CountResult | JSONResponse:
    """Counts the members a rule matches (from a snapshot in memory: fast per keystroke)."""
    try:
        result = service.count(engine=request.app.state.engine, rule=_read(body))
    except RuleError as error:
        return rule_problem(error, _text(body))
    return CountResult(**result)


@router.post(
    "/segments:sample",
    response_model=SampleResult,
    responses=RuleProblem,
    dependencies=[require_scope("segments:read")],
)
def sample_segment(
    body: RuleInput, request: Request, db_session: DbSession
) -> SampleResult | JSONResponse:
    """Counts the members a rule matches and shows the first few of them (who they are)."""
    try:
        result = service.count(engine=request.app.state.engine, rule=_read(body))
    except RuleError as error:
        return rule_problem(error, _text(body))
    members = members_by_ids(db_session=db_session, member_ids=result["sample"])
    return SampleResult(
        count=result["count"],
        members=[Member(id=m.id, **member_view(db_session=db_session, member=m)) for m in members],
    )


@router.post(
    "/segments:parse",
    response_model=ParseResult,
    responses=RuleProblem,
    dependencies=[require_scope("segments:read")],
)
def parse_segment(body: RuleInput) -> ParseResult | JSONResponse:
    """Reads a rule (text or tree) and answers its canonical text and JSON tree."""
    try:
        rule = _read(body)
    except RuleError as error:
        return rule_problem(error, _text(body))
    return ParseResult(text=to_text(rule), tree=to_json(rule))
