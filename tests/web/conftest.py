"""Fixtures of the console tests: the app on the test store, people of each role, and a
client signed in as one of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.accounts import users
from tidings.accounts.models import Role
from tidings.app import create_app
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.members.models import Member, Store

PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    """The app on the test store, with people of each role to sign in as."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app = create_app(engine)

    def add_user(self, role: Role, store: str | None = None) -> str:
        """Creates a user of `role` (once) and returns their name."""
        name = f"{role.value}-{store or 'all'}"
        with session_scope(self.engine) as db_session:
            if not any(user.name == name for user in users.list_users(db_session=db_session)):
                users.create_user(
                    db_session=db_session, name=name, role=role, password=PASSWORD, store_code=store
                )
        return name

    def client(self) -> TestClient:
        """A browser with no session."""
        return TestClient(self.app)

    def __call__(self, role: Role, store: str | None = None) -> TestClient:
        """A browser signed in as a user of `role`."""
        client = self.client()
        response = sign_in(client, self.add_user(role, store), PASSWORD)
        assert response.status_code == 303, response.text
        return client


@pytest.fixture
def console(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Console]:
    """The console on the test store (both engines)."""
    monkeypatch.setenv("TIDINGS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield Console(engine)
    get_settings.cache_clear()


def csrf_of(client: TestClient, path: str = "/signin") -> str:
    """The CSRF token a page's forms carry."""
    match = CSRF_INPUT.search(client.get(path).text)
    assert match is not None
    return match.group(1)


def sign_in(client: TestClient, name: str, password: str):  # type: ignore[no-untyped-def]
    """Posts the sign-in form as a browser would."""
    token = csrf_of(client)
    return client.post(
        "/signin",
        data={"name": name, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )


def add_store_members(engine: Engine) -> dict[str, list[int]]:
    """Two stores with two members each; returns member ids by store code."""
    found: dict[str, list[int]] = {}
    with session_scope(engine) as db_session:
        stores = (("SH001", "1381234", ("王芳", "李雷")), ("BJ002", "1391234", ("王强", "赵敏")))
        for code, digits, names in stores:
            store = Store(code=code, name=f"门店{code}", city="上海")
            db_session.add(store)
            db_session.flush()
            members = [
                Member(
                    code=f"{code}-{n}",
                    phone=f"+86{digits}{5670 + n}",
                    name=names[n],
                    store_id=store.id,
                    tier="gold",
                    tags=["榴莲爱好者"] if n == 1 else [],
                )
                for n in range(2)
            ]
            db_session.add_all(members)
            db_session.flush()
            found[code] = [member.id for member in members]
    return found
