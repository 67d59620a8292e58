"""The text of one transactional message: its template or text filled with the request's
values (and the member's name, surname, points and tier), framed with the brand signature,
and for a verification a fresh code, with the form of the text that shows it masked."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Row

from tidings.config import Settings
from tidings.content.render import render_one
from tidings.content.template import (
    MessageKind,
    Template,
    TemplateError,
    prepare_template,
)
from tidings.notifications import codes
from tidings.notifications.models import NotificationKind
from tidings.notifications.schemas import MessageCreate

MEMBER_VALUES = ("name", "gender", "points", "tier")  # what a template may show of the member
CODE = "code"
MINUTES = "minutes"


class NotificationError(ValueError):
    """A transactional message that cannot be sent as asked; `status` is the HTTP answer."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Rendered:
    """The text to send, the text to show back, and the code in it (verifications)."""

    text: str
    shown: str
    code: str | None


@lru_cache(maxsize=512)
def _template(source: str, columns: tuple[str, ...], brand: str) -> Template:
    return prepare_template(
        source, kind=MessageKind.TRANSACTIONAL, columns=columns, brand_name=brand
    )


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _source(request: MessageCreate, settings: Settings) -> str:
    if request.text is not None:
        return _escaped(request.text)
    if request.template is not None:
        return request.template
    return settings.verification_text


def render_request(
    request: MessageCreate, *, member: Row[*tuple[Any, ...]] | None, settings: Settings
) -> Rendered:
    """Renders the request's text, or raises a NotificationError saying what to fix;
    `member` is the member's row (name, gender, points and tier are read)."""
    values: dict[str, Any] = {key: value for key, value in request.values.items()}
    if member is not None:
        values.setdefault("name", member.name)
        values.setdefault("gender", member.gender)
        values.setdefault("points", member.points)
        values.setdefault("tier", member.tier)
        values.setdefault("member_id", member.id)  # for {preference_link}
    code = None
    source = _source(request, settings)
    if request.kind is NotificationKind.VERIFICATION:
        if "{code}" not in source.replace(" ", ""):
            raise NotificationError("a verification's template must show the code: add {code}")
        code = codes.new_code(settings.verification_digits)
        values[CODE] = code
        values.setdefault(MINUTES, settings.verification_valid_minutes)
    columns = tuple(sorted({*values, *MEMBER_VALUES, "surname"}))
    try:
        template = _template(source, columns, settings.brand_name)
        rendering = render_one(template, values)
    except TemplateError as error:
        raise NotificationError(
            f"template: {error}; give each {{field}} it shows in values"
        ) from None
    if rendering.text is None:
        missing = (rendering.skip_reason or "").split(":")[-1]
        raise NotificationError(
            f"the template shows {{{missing}}}, but values gives it no value; add it to values"
        )
    shown = codes.masked(rendering.text, code) if code else rendering.text
    return Rendered(text=rendering.text, shown=shown, code=code)
