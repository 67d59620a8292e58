"""Settings: every setting in force, read-only because it comes from the environment
(TIDINGS_*), with secrets shown only as set or not; the console's users and the API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.accounts import service as api_keys
from tidings.accounts import users
from tidings.config import Settings, get_settings
from tidings.http import DbSession
from tidings.web.rendering import render
from tidings.web.security import CurrentViewer

router = APIRouter(include_in_schema=False)
SECRET_WORDS = ("secret", "password", "token", "credential", "key", "url")


def _is_secret(name: str) -> bool:
    # Database and webhook URLs may carry a password, so they are hidden like secrets.
    return any(word in name for word in SECRET_WORDS)


def settings_rows(settings: Settings) -> list[dict[str, Any]]:
    """Each setting's variable, value (secrets hidden) and meaning."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = ("set" if value else "not set") if _is_secret(name) else value
        rows.append(
            {"variable": f"TIDINGS_{name.upper()}", "value": shown, "meaning": field.description}
        )
    return rows


@router.get("/settings")
def settings_page(request: Request, viewer: CurrentViewer, db_session: DbSession) -> Response:
    """Shows the settings in force, the users and the API keys (admins only)."""
    viewer.require()
    people = [
        (user, users.store_code_of(db_session=db_session, user=user))
        for user in users.list_users(db_session=db_session)
    ]
    return render(
        request,
        "settings/templates/settings.html",
        viewer=viewer,
        settings=settings_rows(get_settings()),
        people=people,
        keys=api_keys.list_keys(db_session=db_session),
    )
