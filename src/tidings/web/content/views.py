"""Templates: an editor whose preview follows the text as a chosen member would read it,
with the character and part count, the cost and every finding highlighted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tidings.accounts.models import Role
from tidings.config import get_settings
from tidings.content.preview import preview
from tidings.content.template import TemplateError
from tidings.content.words import WordListError
from tidings.http import DbSession
from tidings.members.service import find_member
from tidings.web.rendering import render
from tidings.web.security import CsrfChecked, CurrentViewer

router = APIRouter(include_in_schema=False)
WRITERS = (Role.MARKETER,)
EXAMPLE = "{surname}您好，您有{points}积分可兑换好礼，详情 {link}"


@router.get("/templates")
def editor(request: Request, viewer: CurrentViewer) -> Response:
    """Shows the editor with an example template."""
    viewer.require(*WRITERS)
    return render(request, "content/templates/editor.html", viewer=viewer, text=EXAMPLE)


@router.post("/templates/preview", dependencies=[CsrfChecked])
def live_preview(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    text: Annotated[str, Form()] = "",
    member: Annotated[str, Form()] = "",
) -> Response:
    """Answers the editor with the text as the chosen member would read it."""
    viewer.require(*WRITERS)
    settings = get_settings()
    context: dict[str, Any] = {"member_key": member}
    chosen = None
    if member.strip():
        chosen = find_member(
            db_session=db_session, key=member.strip(), region=settings.default_region
        )
        scope = viewer.store_scope
        if chosen is None or (scope is not None and chosen.store_id != scope):
            context["member_error"] = f"no member '{member.strip()}' among those you can see"
            chosen = None
    context["member"] = chosen
    try:
        context["result"] = preview(
            db_session=db_session, template_text=text, member=chosen, settings=settings
        )
    except (TemplateError, WordListError) as error:
        context["error"] = str(error)
    return render(request, "content/templates/preview.html", viewer=viewer, **context)
