"""Signing in to the console: argon2-checked passwords, a signed HttpOnly SameSite cookie,
CSRF on the form, attempts limited per account and address, each sign-in audited."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from tidings.accounts.models import ConsoleUser, Role
from tidings.audit.models import AuditEvent
from tidings.config import get_settings
from tidings.db import session_scope

from .conftest import PASSWORD, Console, csrf_of, sign_in


def _actions(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as db_session:
        rows = db_session.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        )
        return [(actor, action) for actor, action in rows]


def test_a_page_without_a_session_leads_to_the_sign_in_form(console: Console) -> None:
    client = console.client()
    response = client.get("/members", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/members"
    assert "登录" in client.get("/signin").text


def test_signing_in_sets_a_protected_cookie_and_is_audited(
    console: Console, engine: Engine
) -> None:
    client = console(Role.MARKETER)
    cookie = client.cookies.get("tidings_session")
    assert cookie
    with session_scope(engine) as db_session:
        user = db_session.scalars(select(ConsoleUser)).one()
        assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash
    assert ("marketer-all", "console.sign_in") in _actions(engine)
    assert client.get("/members").status_code == 200


def test_the_session_cookie_is_httponly_and_samesite_lax(console: Console) -> None:
    name = console.add_user(Role.ADMIN)
    response = sign_in(console.client(), name, PASSWORD)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header


def test_a_wrong_password_is_refused_and_audited(console: Console, engine: Engine) -> None:
    name = console.add_user(Role.AGENT)
    client = console.client()
    response = sign_in(client, name, "not the password")
    assert response.status_code == 401
    assert "用户名或密码不正确" in response.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert (name, "console.sign_in_failed") in _actions(engine)


def test_a_form_without_the_csrf_token_is_refused(console: Console) -> None:
    name = console.add_user(Role.ADMIN)
    client = console.client()
    client.get("/signin")
    response = client.post(
        "/signin", data={"name": name, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_in_attempts_are_limited_per_account(console: Console) -> None:
    name = console.add_user(Role.ANALYST)
    client = console.client()
    for _ in range(5):
        assert sign_in(client, name, "wrong password!").status_code == 401
    # The sixth attempt in the minute is refused even with the right password.
    response = sign_in(client, name, PASSWORD)
    assert response.status_code == 429
    assert "过于频繁" in response.text


def test_signing_out_ends_the_session(console: Console) -> None:
    client = console(Role.ADMIN)
    token = csrf_of(client, "/")
    client.post("/signout", data={"csrf_token": token})
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_console_speaks_chinese_until_switched_to_english(console: Console) -> None:
    client = console(Role.ADMIN)
    assert "会员" in client.get("/members").text
    client.get("/lang/en", headers={"referer": "http://testserver/members"})
    page = client.get("/members").text
    assert "Members" in page and "会员卡号" not in page


def test_people_sharing_an_address_are_limited_together(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CONSOLE_SIGN_IN_ADDRESS_LIMIT", "3/minute")
    get_settings.cache_clear()
    shared = Console(console.engine)  # the app reads the limit when it is made
    names = [shared.add_user(role) for role in (Role.ADMIN, Role.AGENT, Role.ANALYST)]
    client = shared.client()
    assert [sign_in(client, name, "wrong password!").status_code for name in names] == [401] * 3
    # A fourth account from the same address waits, though it never tried before.
    assert sign_in(client, shared.add_user(Role.MARKETER), PASSWORD).status_code == 429
