"""Console users: created with a role, signed in by an argon2-hashed password."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings import clock
from tidings.accounts.models import ConsoleUser, Role
from tidings.members.models import Store

MIN_PASSWORD_CHARS = 10
_hasher = PasswordHasher()
# A hash to check against when the name is unknown, so that a wrong name takes as long
# as a wrong password and the answer time does not tell which names exist.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


class UserError(ValueError):
    """A user operation a person asked for cannot be done (the message says why)."""


def create_user(
    *, db_session: Session, name: str, role: Role, password: str, store_code: str | None = None
) -> ConsoleUser:
    """Creates a console user; a store manager must name their store, no one else may."""
    name = name.strip()
    if not name:
        raise UserError("give the user a name, e.g. 'lin.wei'")
    if db_session.scalar(select(ConsoleUser).where(ConsoleUser.name == name)) is not None:
        raise UserError(f"a user named '{name}' exists already; choose another name")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}"
        )
    store_id = _store_for(db_session, role, store_code)
    user = ConsoleUser(
        name=name, role=role, store_id=store_id, password_hash=_hasher.hash(password)
    )
    db_session.add(user)
    db_session.flush()
    return user


def _store_for(db_session: Session, role: Role, store_code: str | None) -> int | None:
    if role is Role.STORE_MANAGER and not store_code:
        raise UserError("a store manager sees one store: give it with --store CODE")
    if role is not Role.STORE_MANAGER:
        if store_code:
            raise UserError(f"only a store manager is bound to a store, not a {role.value}")
        return None
    store_id = db_session.scalar(select(Store.id).where(Store.code == store_code))
    if store_id is None:
        raise UserError(f"no store has the code '{store_code}'; import the stores first")
    return store_id


def authenticate(*, db_session: Session, name: str, password: str) -> ConsoleUser | None:
    """Returns the active user whose name and password match, or None."""
    user = db_session.scalar(select(ConsoleUser).where(ConsoleUser.name == name.strip()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_sign_in_at = clock.now()
    return user


def get_user(*, db_session: Session, user_id: int) -> ConsoleUser | None:
    """Gets an active user by id."""
    user = db_session.get(ConsoleUser, user_id)
    return None if user is None or user.disabled_at is not None else user


def list_users(*, db_session: Session) -> list[ConsoleUser]:
    """Lists every user by name."""
    return list(db_session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))


def store_code_of(*, db_session: Session, user: ConsoleUser) -> str | None:
    """The code of the store a store manager is bound to."""
    if user.store_id is None:
        return None
    return db_session.scalar(select(Store.code).where(Store.id == user.store_id))
