"""The FastAPI application: mounts every domain's router under /api/v1 and the console at /."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Engine

from tidings import __version__
from tidings.campaigns.api import router as campaigns_router
from tidings.config import get_settings
from tidings.content.api import router as content_router
from tidings.http import install_problem_handlers, require_api_key
from tidings.inbound.api import router as inbound_router
from tidings.inbound.hooks import install_log_redaction
from tidings.inbound.hooks import router as hooks_router
from tidings.loyalty.api import router as loyalty_router
from tidings.members.api import router as members_router
from tidings.migrate import ready_engine
from tidings.notifications.api import router as notifications_router
from tidings.notifications.express import install_express_lane
from tidings.notifications.pages import router as preference_pages
from tidings.orders.api import router as orders_router
from tidings.profiles.api import router as profiles_router
from tidings.reports.api import router as reports_router
from tidings.segments.api import router as segments_router
from tidings.tracking.redirect import install_short_links
from tidings.triggers.api import router as triggers_router
from tidings.web.console import mount_console


def create_app(engine: Engine | None = None) -> FastAPI:
    """Builds the application on `engine` (default: the configured store, migrated)."""
    app = FastAPI(title="tidings", version=__version__, docs_url="/docs")
    app.state.engine = engine or ready_engine()
    install_problem_handlers(app)

    public = APIRouter(prefix="/api/v1")

    @public.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Answers when the service is up; needs no key."""
        return {"status": "ok", "version": __version__}

    protected = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)])
    protected.include_router(members_router)
    protected.include_router(orders_router)
    protected.include_router(profiles_router)
    protected.include_router(segments_router)
    protected.include_router(content_router)
    protected.include_router(campaigns_router)
    protected.include_router(inbound_router)
    protected.include_router(notifications_router)
    protected.include_router(loyalty_router)
    protected.include_router(reports_router)
    protected.include_router(triggers_router)

    app.include_router(public)
    app.include_router(protected)
    # Provider callbacks carry no API key: each is checked by its signature or secret.
    app.include_router(hooks_router)
    # A member's preference page is reached by the signed link in their messages.
    app.include_router(preference_pages)
    # Short links carry no key either; their route goes first, as the busiest.
    install_short_links(app, get_settings())
    # Well-formed sends of transactional messages go first of all (see notifications.express).
    install_express_lane(app)
    # The web console at /, after every other route so that none of them is shadowed.
    mount_console(app, get_settings())
    install_log_redaction()
    return app
