"""Mounts the web console on the application: the session cookie, the static files, the
answers to signed-out or forbidden requests, and every page's routes."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from tidings import keys
from tidings.config import Settings
from tidings.web.audit.views import router as audit_router
from tidings.web.campaigns.views import router as campaigns_router
from tidings.web.campaigns.wizard import router as wizard_router
from tidings.web.content.views import router as content_router
from tidings.web.dashboard.figures import FiguresCache
from tidings.web.dashboard.views import router as dashboard_router
from tidings.web.members.views import router as members_router
from tidings.web.rendering import WEB_DIR, is_htmx, render
from tidings.web.security import (
    BadCsrfToken,
    Forbidden,
    NotFound,
    SignInLimiter,
    SignInRequired,
)
from tidings.web.segments.views import router as segments_router
from tidings.web.settings.views import router as settings_router
from tidings.web.signin.views import router as signin_router
from tidings.web.tickets.views import router as tickets_router
from tidings.web.triggers.views import router as triggers_router

SESSION_COOKIE = "tidings_session"


def mount_console(app: FastAPI, settings: Settings) -> None:
    """Adds the console's pages at / to `app`."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=keys.secret(settings, "console"),
        session_cookie=SESSION_COOKIE,
        max_age=settings.console_session_hours * 3600,
        same_site="lax",
        https_only=settings.console_https,
    )
    app.state.sign_in_limiter = SignInLimiter(
        per_account=settings.console_sign_in_limit,
        per_address=settings.console_sign_in_address_limit,
    )
    app.state.dashboard_figures = FiguresCache(
        app.state.engine, max_age_seconds=settings.console_dashboard_seconds
    )
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    _install_handlers(app)
    for router in (
        signin_router,
        dashboard_router,
        members_router,
        segments_router,
        content_router,
        wizard_router,  # before the campaign pages: /campaigns/new/... is not a campaign id
        campaigns_router,
        triggers_router,
        tickets_router,
        audit_router,
        settings_router,
    ):
        app.include_router(router)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _error: SignInRequired) -> Response:
        target = "/signin?next=" + quote(request.url.path)
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> Response:
        return render(request, "layout/error.html", status_code=403, message=str(error))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound) -> Response:
        return render(request, "layout/error.html", status_code=404, message=str(error))

    @app.exception_handler(BadCsrfToken)
    async def bad_csrf(request: Request, _error: BadCsrfToken) -> Response:
        return render(request, "layout/error.html", status_code=403, message_key="csrf_refused")
