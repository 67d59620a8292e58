"""Segments: a rule builder and a text editor kept in step, the audience count and a sample
updating as the rule changes, and the saved segments with their sizes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy import Engine
from starlette.responses import RedirectResponse, Response

from tidings import clock
from tidings.accounts.models import Role
from tidings.http import DbSession
from tidings.members.card import members_by_ids
from tidings.segments import service as segments
from tidings.segments.builder import OPERATORS, BuilderRow, rows_of, text_of
from tidings.segments.fields import FIELD_LIST
from tidings.segments.lexer import RuleError
from tidings.segments.rules import parse
from tidings.web.rendering import render
from tidings.web.security import CsrfChecked, CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)
EDITORS = (Role.MARKETER, Role.ANALYST)
BLANK_ROW = BuilderRow("", "==", "")


def _editor(
    request: Request,
    viewer: Viewer,
    db_session: DbSession,
    *,
    rule: str,
    rows: list[BuilderRow] | None,
    source: str,
) -> dict[str, Any]:
    """Everything the editor shows for `rule`: its rows, count, sample or error."""
    context: dict[str, Any] = {"rule": rule, "rows": rows, "source": source}
    if not rule.strip():
        return context
    engine: Engine = request.app.state.engine
    try:
        counted = segments.count(engine=engine, rule=rule)
    except (RuleError, segments.SegmentError) as error:
        context["error"] = str(error)
        return context
    context["count"] = counted["count"]
    context["sample"] = members_by_ids(db_session=db_session, member_ids=counted["sample"])
    return context


def _from_form(
    source: str, rule: str, fields: list[str], operators: list[str], values: list[str]
) -> tuple[str, list[BuilderRow] | None]:
    """The rule text and builder rows of a submitted editor, whichever side was edited."""
    if source == "builder":
        rows = [BuilderRow(f, o, v) for f, o, v in zip(fields, operators, values, strict=False)]
        return text_of(rows), rows
    return rule, rows_of(parse(rule)) if rule.strip() else []


@router.get("/segments")
def segments_page(request: Request, viewer: CurrentViewer, db_session: DbSession) -> Response:
    """Shows the editor and the saved segments with their sizes."""
    viewer.require(*EDITORS)
    return render(
        request,
        "segments/templates/segments.html",
        viewer=viewer,
        saved=segments.list_segments(db_session=db_session),
        fields=FIELD_LIST,
        operators=OPERATORS,
        rule="",
        rows=[BLANK_ROW],
        source="text",
    )


Fields = Annotated[list[str], Form(alias="field")]
Operators = Annotated[list[str], Form(alias="operator")]
Values = Annotated[list[str], Form(alias="value")]


@router.post("/segments/preview", dependencies=[CsrfChecked])
def preview(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    source: Annotated[str, Form()] = "text",
    rule: Annotated[str, Form()] = "",
    fields: Fields = [],  # noqa: B006 (FastAPI copies form defaults)
    operators: Operators = [],  # noqa: B006
    values: Values = [],  # noqa: B006
) -> Response:
    """Answers the editor with the count and sample, and the other side brought in step."""
    viewer.require(*EDITORS)
    try:
        rule, rows = _from_form(source, rule, fields, operators, values)
    except RuleError as error:
        context: dict[str, Any] = {"rule": rule, "rows": None, "error": str(error)}
        context["source"] = source
    else:
        context = _editor(request, viewer, db_session, rule=rule, rows=rows, source=source)
    return render(
        request,
        "segments/templates/preview.html",
        viewer=viewer,
        fields=FIELD_LIST,
        operators=OPERATORS,
        **context,
    )


@router.post("/segments", dependencies=[CsrfChecked])
def save(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    name: Annotated[str, Form()] = "",
    rule: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    """Saves the rule under a name and records its size."""
    viewer.require(Role.MARKETER)
    try:
        segment = segments.save(
            db_session=db_session, name=name.strip(), rule=rule, description=description or None
        )
        counted = segments.count(engine=request.app.state.engine, rule=rule)
    except (RuleError, segments.SegmentError) as error:
        db_session.rollback()
        return render(
            request,
            "segments/templates/segments.html",
            viewer=viewer,
            status_code=422,
            saved=segments.list_segments(db_session=db_session),
            fields=FIELD_LIST,
            operators=OPERATORS,
            rule=rule,
            rows=[BLANK_ROW],
            source="text",
            save_error=str(error),
            name=name,
        )
    segment.last_count = counted["count"]
    segment.counted_at = clock.now()
    return RedirectResponse("/segments", status_code=303)
