"""Who is looking at the console: the signed session cookie, the CSRF token, the sign-in
rate limit, and the role rules (masked phones, one store's view)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.requests import Request

from tidings.accounts import users
from tidings.accounts.models import ConsoleUser, Role
from tidings.http import DbSession

USER_KEY = "user_id"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MASK = "****"


class SignInRequired(Exception):
    """The request needs a signed-in user; the console answers with the sign-in page."""


class Forbidden(Exception):
    """The signed-in user's role may not do this (the message says what it needs)."""


class NotFound(Exception):
    """What the page names does not exist, or is not this person's to see."""


class BadCsrfToken(Exception):
    """A form came without this session's CSRF token (an old tab, or another site)."""


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Refuses a state-changing request without the session's token (form field or header)."""
    expected = request.session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise BadCsrfToken()


class SignInLimiter:
    """Counts sign-in attempts per account and per address in fixed windows."""

    def __init__(self, *, per_account: str, per_address: str) -> None:
        self.per_account = parse(per_account)
        self.per_address = parse(per_address)
        self.limiter = FixedWindowRateLimiter(MemoryStorage())

    def allow(self, *, name: str, address: str) -> bool:
        """Takes one attempt for both keys; False when either has none left."""
        by_name = self.limiter.hit(self.per_account, "sign-in-name", name.strip().lower())
        by_address = self.limiter.hit(self.per_address, "sign-in-address", address)
        return by_name and by_address


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as the pages see them."""

    user_id: int
    name: str
    role: Role
    store_id: int | None

    @classmethod
    def of(cls, user: ConsoleUser) -> Viewer:
        return cls(user_id=user.id, name=user.name, role=user.role, store_id=user.store_id)

    @property
    def masks_phones(self) -> bool:
        return self.role is Role.ANALYST

    @property
    def store_scope(self) -> int | None:
        """The one store this person sees, or None for every store."""
        return self.store_id if self.role is Role.STORE_MANAGER else None

    def require(self, *roles: Role) -> None:
        """Refuses unless the person has one of `roles` (an admin may do everything)."""
        if self.role is not Role.ADMIN and self.role not in roles:
            names = ", ".join(role.value for role in (Role.ADMIN, *roles))
            raise Forbidden(f"this needs one of the roles {names}; you are {self.role.value}")


def mask_phone(phone: str | None) -> str:
    """A phone as an analyst sees it: +8613812345678 -> 138****5678."""
    if not phone:
        return ""
    digits = phone.removeprefix("+86") if phone.startswith("+86") else phone.lstrip("+")
    if len(digits) < 8:
        return MASK
    return f"{digits[:3]}{MASK}{digits[-4:]}"


def shown_phone(viewer: Viewer, phone: str | None) -> str:
    """The phone as this viewer may see it."""
    if not phone:
        return ""
    return mask_phone(phone) if viewer.masks_phones else phone


def current_viewer(request: Request, db_session: DbSession) -> Viewer:
    """The signed-in person, or the sign-in page when there is none."""
    user_id = request.session.get(USER_KEY)
    user = users.get_user(db_session=db_session, user_id=int(user_id)) if user_id else None
    if user is None:
        request.session.pop(USER_KEY, None)
        raise SignInRequired()
    return Viewer.of(user)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
CsrfChecked = Depends(check_csrf)
