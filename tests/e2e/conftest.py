"""The browser tests' world: a demo retailer on a migrated SQLite store, the app served by
uvicorn on a loopback port, console users of each role, and Debian's chromium driven by
Playwright (never a downloaded browser). Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, select

from tidings.accounts import users
from tidings.accounts.models import Role
from tidings.app import create_app
from tidings.config import Settings, get_settings
from tidings.db import make_engine, session_scope
from tidings.inbound.service import store_replies
from tidings.members.models import Member, Store
from tidings.providers.base import InboundReply

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "e2e password 2026"
DEMO_MEMBERS = "600"
DEMO_MONTHS = "3"
START_TIMEOUT = 20.0  # seconds uvicorn may take to answer
# How long a step may wait for what the page should show. A page answers here in well under
# a second; a CI machine whose two cores are busy with other suites can take tens of seconds,
# and Playwright's own defaults (5 s for an expectation, 30 s for an action) failed there.
WAIT_MS = 60_000


@dataclass(frozen=True)
class Served:
    """The console under test: its address, store and the store manager's store."""

    url: str
    engine: Engine
    store_code: str
    other_store_code: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _demo_store(root: Path) -> str:
    url = f"sqlite:///{root / 'var' / 'tidings.db'}"
    env = {**os.environ, "TIDINGS_DATABASE_URL": url, "TIDINGS_VAR_DIR": str(root / "var")}
    command = [sys.executable, "-m", "tidings", "demo", "run", "--members", DEMO_MEMBERS]
    command += ["--months", DEMO_MONTHS, "--dir", str(root / "demo"), "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        pytest.fail(f"the demo store could not be made:\n{done.stderr[-3000:]}")
    return url


def _people_and_a_ticket(engine: Engine) -> tuple[str, str]:
    with session_scope(engine) as db_session:
        first, second = db_session.scalars(select(Store).order_by(Store.code).limit(2)).all()
        for role in Role:
            store = first.code if role is Role.STORE_MANAGER else None
            users.create_user(
                db_session=db_session,
                name=role.value,
                role=role,
                password=PASSWORD,
                store_code=store,
            )
        phone = db_session.scalars(
            select(Member.phone).where(Member.store_id == first.id, Member.phone.is_not(None))
        ).first()
        assert phone is not None
        store_replies(
            db_session=db_session,
            replies=[
                InboundReply(
                    "simulator", phone, "我要找店长，会员卡积分不对", datetime.now(UTC), "e2e-1"
                )
            ],
            now=datetime.now(UTC),
            settings=Settings(),
        )
        return first.code, second.code


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The console on a demo store, served on a free loopback port."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    root = tmp_path_factory.mktemp("e2e")
    url = _demo_store(root)
    with pytest.MonkeyPatch.context() as patch:
        # The served app keeps its keys under the demo's var/, and tests after these
        # see the settings they had before.
        patch.setenv("TIDINGS_VAR_DIR", str(root / "var"))
        get_settings.cache_clear()
        engine = make_engine(url)
        store_code, other_store_code = _people_and_a_ticket(engine)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(engine), host="127.0.0.1", port=_free_port(), log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        port = server.config.port
        yield Served(f"http://127.0.0.1:{port}", engine, store_code, other_store_code)
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium, headless. Module-scoped: Playwright's sync API keeps an event loop
    running while it is open, which later tests calling asyncio.run() must not meet."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def sign_in_as(served: Served, browser):  # type: ignore[no-untyped-def]
    """Opens a fresh browser context signed in as the user of a role."""
    from playwright.sync_api import expect

    contexts = []

    def open_page(role: Role):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN")
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(served.url + "/signin")
        page.fill("input[name=name]", role.value)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        # Signed in when the dashboard shows who is signed in (a refusal stays on /signin).
        expect(page.locator("header .user")).to_have_attribute("data-role", role.value)
        expect(page).to_have_url(served.url + "/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Saves a full-page screenshot under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
