"""REST endpoints of this domain: a template's preview for a member, with its findings, as the
console's template editor shows it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from tidings.config import get_settings
from tidings.content.preview import preview
from tidings.content.schemas import FindingOut, TemplatePreview, TemplatePreviewIn
from tidings.content.template import TemplateError
from tidings.content.words import WordListError
from tidings.http import DbSession, require_scope
from tidings.members.service import find_member

router = APIRouter(tags=["templates"])


@router.post(
    "/templates:preview",
    response_model=TemplatePreview,
    dependencies=[require_scope("templates:read")],
)
def preview_template(body: TemplatePreviewIn, db_session: DbSession) -> TemplatePreview:
    """Renders the template for the member, framed with signature and opt-out text, and
    answers its characters, parts, cost and every finding (422 when it cannot be read)."""
    settings = get_settings()
    member = None
    if body.member is not None and body.member.strip():
        key = body.member.strip()
        member = find_member(db_session=db_session, key=key, region=settings.default_region)
        if member is None or member.erased_at is not None:
            raise HTTPException(404, f"no member has the code or phone '{key}'")
    try:
        result = preview(
            db_session=db_session, template_text=body.text, member=member, settings=settings
        )
    except (TemplateError, WordListError) as error:
        raise HTTPException(422, str(error)) from error
    findings = [FindingOut(**finding.as_dict()) for finding in result.pop("findings", [])]
    result.pop("stretches", None)
    return TemplatePreview(**result, findings=findings)
