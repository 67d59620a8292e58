"""Rendering a console page: the Jinja2 templates, the language of the texts, and the
values every page needs (the viewer, the CSRF token, phones as this viewer may see them)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from tidings.web.security import Viewer, csrf_token, mask_phone, shown_phone
from tidings.web.texts import DEFAULT_LANGUAGE, TEXTS

WEB_DIR = Path(__file__).parent
LANGUAGE_COOKIE = "tidings_lang"
PAGE_SIZE = 25  # rows per page of every list

templates = Jinja2Templates(directory=str(WEB_DIR))


def language_of(request: Request) -> str:
    """The language the person chose (a cookie), Chinese unless they switched."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
    return chosen if chosen in TEXTS else DEFAULT_LANGUAGE


def money(cents: int | None) -> str:
    """Integer cents as yuan: 123456 -> ¥1,234.56."""
    return "" if cents is None else f"¥{cents / 100:,.2f}"


def percent(part: int | float, whole: int | float) -> str:
    """A share as a percentage, or a dash when the whole is nothing."""
    return "–" if not whole else f"{100 * part / whole:.1f}%"


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    /,
    *,
    viewer: Viewer | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Renders `template` (a path under web/) in the person's language."""
    language = language_of(request)
    catalogue = TEXTS[language]
    context.update(
        request=request,
        viewer=viewer,
        language=language,
        t=catalogue.__getitem__,
        csrf_token=csrf_token(request),
        phone=partial(shown_phone, viewer) if viewer else mask_phone,
        money=money,
        percent=percent,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)
