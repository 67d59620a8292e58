"""`tidings user create` makes console users with a role (a store manager with their store),
keeping only an argon2 hash, and refuses what it cannot do with a clear message."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from tidings.accounts import users
from tidings.accounts.models import ConsoleUser, Role
from tidings.db import session_scope
from tidings.members.models import Store


def test_a_user_is_created_from_stdin_and_can_sign_in(cli: Any, engine: Engine) -> None:
    result = cli(
        "user",
        "create",
        "lin.wei",
        "--role",
        "marketer",
        "--password-stdin",
        input="a long enough secret\n",
    )
    assert result.exit_code == 0, result.output
    with session_scope(engine) as db_session:
        user = db_session.scalars(select(ConsoleUser)).one()
        assert user.role is Role.MARKETER and user.password_hash.startswith("$argon2")
        signed = users.authenticate(
            db_session=db_session, name="lin.wei", password="a long enough secret"
        )
        assert signed is not None
        assert users.authenticate(db_session=db_session, name="lin.wei", password="wrong") is None
    assert "lin.wei\tmarketer" in cli("user", "list").output


def test_a_store_manager_needs_a_known_store(cli: Any, engine: Engine) -> None:
    missing = cli(
        "user",
        "create",
        "zhou",
        "--role",
        "store_manager",
        "--password-stdin",
        input="a long enough secret\n",
    )
    assert missing.exit_code == 2 and "--store CODE" in missing.output
    unknown = cli(
        "user",
        "create",
        "zhou",
        "--role",
        "store_manager",
        "--store",
        "NOPE",
        "--password-stdin",
        input="a long enough secret\n",
    )
    assert unknown.exit_code == 2 and "no store has the code 'NOPE'" in unknown.output
    with session_scope(engine) as db_session:
        db_session.add(Store(code="SH01", name="徐汇店"))
    made = cli(
        "user",
        "create",
        "zhou",
        "--role",
        "store_manager",
        "--store",
        "SH01",
        "--password-stdin",
        input="a long enough secret\n",
    )
    assert made.exit_code == 0, made.output
    assert "zhou\tstore_manager\tSH01" in cli("user", "list").output


def test_a_short_password_or_a_taken_name_is_refused(cli: Any, engine: Engine) -> None:
    short = cli("user", "create", "wang", "--role", "agent", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least 10" in short.output
    cli(
        "user",
        "create",
        "wang",
        "--role",
        "agent",
        "--password-stdin",
        input="a long enough secret\n",
    )
    again = cli(
        "user",
        "create",
        "wang",
        "--role",
        "analyst",
        "--password-stdin",
        input="a long enough secret\n",
    )
    assert again.exit_code == 2 and "exists already" in again.output
    with session_scope(engine) as db_session:
        assert len(db_session.scalars(select(ConsoleUser)).all()) == 1
