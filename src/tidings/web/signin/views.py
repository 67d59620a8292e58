"""The sign-in page: a name and password checked against the argon2 hash, at most a few
attempts a minute per account and per address, each sign-in audited."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from tidings.accounts import users
from tidings.audit import service as audit
from tidings.http import DbSession
from tidings.web.rendering import LANGUAGE_COOKIE, render
from tidings.web.security import USER_KEY, CsrfChecked, SignInLimiter
from tidings.web.texts import TEXTS

router = APIRouter(include_in_schema=False)
LANGUAGE_COOKIE_DAYS = 365


def _safe_next(target: str | None) -> str:
    # Only paths of this site: never a redirect to another host after signing in.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/signin")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    """Shows the sign-in form."""
    return render(request, "signin/templates/signin.html", next=_safe_next(next))


@router.post("/signin", dependencies=[CsrfChecked])
def sign_in(
    request: Request,
    db_session: DbSession,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Checks the name and password and starts a session."""
    limiter: SignInLimiter = request.app.state.sign_in_limiter
    address = request.client.host if request.client else "unknown"
    if not limiter.allow(name=name, address=address):
        return render(
            request,
            "signin/templates/signin.html",
            status_code=429,
            error_key="sign_in_throttled",
            next=_safe_next(next),
            name=name,
        )
    user = users.authenticate(db_session=db_session, name=name, password=password)
    if user is None:
        audit.record(
            db_session=db_session,
            actor=name.strip()[:100] or "-",
            action="console.sign_in_failed",
            details={"address": address},
        )
        return render(
            request,
            "signin/templates/signin.html",
            status_code=401,
            error_key="sign_in_failed",
            next=_safe_next(next),
            name=name,
        )
    request.session.clear()
    request.session[USER_KEY] = user.id
    audit.record(
        db_session=db_session,
        actor=user.name,
        action="console.sign_in",
        details={"address": address, "role": user.role.value},
    )
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/signout", dependencies=[CsrfChecked])
def sign_out(request: Request) -> Response:
    """Ends the session."""
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


@router.get("/lang/{language}")
def choose_language(request: Request, language: str) -> Response:
    """Switches the console's language and goes back to the page the person was on."""
    # Only the path of the page before: a referer naming another host cannot lead there.
    referer = urlsplit(request.headers.get("referer", "/"))
    back = _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    response = RedirectResponse(back, status_code=303)
    if language in TEXTS:
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            max_age=LANGUAGE_COOKIE_DAYS * 86400,
            samesite="lax",
            httponly=True,
        )
    return response
