"""API keys: created once and shown once, stored as a SHA-256 hash, checked on every request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings import clock
from tidings.accounts.models import ApiKey
from tidings.accounts.scopes import ALL, UnknownScope, check_scopes

KEY_PREFIX = "tid_"
# A key's last use is noted at most once a minute: noting it on every request made each API
# call a write, which on SQLite queues every request behind the one writer.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyError(ValueError):
    """A key operation a person asked for cannot be done (the message says why)."""


def hash_key(key: str) -> str:
    """Returns the stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create(
    *, db_session: Session, name: str, scopes: list[str] | None = None
) -> tuple[ApiKey, str]:
    """Creates a key named `name`; returns the row and the key itself, which is never stored."""
    if db_session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"an API key named '{name}' exists already; choose another name")
    try:
        scopes = check_scopes(scopes or [ALL])
    except UnknownScope as error:
        raise ApiKeyError(str(error)) from error
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(name=name, prefix=key[:10], key_hash=hash_key(key), scopes=scopes)
    db_session.add(api_key)
    db_session.flush()
    return api_key, key


def authenticate(*, db_session: Session, key: str) -> ApiKey | None:
    """Returns the live key matching `key`, or None."""
    api_key = db_session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if api_key is None or api_key.revoked_at is not None:
        return None
    now = clock.now()
    last = api_key.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        api_key.last_used_at = now
    return api_key


def revoke(*, db_session: Session, name: str) -> ApiKey:
    """Revokes the key named `name`."""
    api_key = db_session.scalar(select(ApiKey).where(ApiKey.name == name))
    if api_key is None:
        raise ApiKeyError(f"no API key is named '{name}'; `tidings apikey list` shows them")
    api_key.revoked_at = clock.now()
    return api_key


def list_keys(*, db_session: Session) -> list[ApiKey]:
    """Lists every key, newest first."""
    return list(db_session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))
