"""The triggers page lists the built-in triggers with their firings and switches one on and
off, each switch in the audit log."""

from __future__ import annotations

import re

from sqlalchemy import Engine, select

from tidings.accounts.models import Role
from tidings.audit.models import AuditEvent
from tidings.db import session_scope
from tidings.triggers.catalogue import BUILTINS
from tidings.triggers.models import Trigger

from .conftest import Console, csrf_of


def _enabled(engine: Engine, trigger_id: int) -> bool:
    with session_scope(engine) as db_session:
        trigger = db_session.get(Trigger, trigger_id)
        assert trigger is not None
        return trigger.enabled


def test_a_marketer_switches_a_trigger_on_and_off(console: Console, engine: Engine) -> None:
    client = console(Role.MARKETER)
    page = client.get("/triggers").text
    assert all(builtin.key in page for builtin in BUILTINS)
    first = re.search(r'action="/triggers/(\d+)/enabled"', page)
    assert first is not None
    trigger_id = int(first.group(1))
    was = _enabled(engine, trigger_id)
    token = csrf_of(client, "/triggers")
    data = {"csrf_token": token, "enabled": str(not was).lower()}
    assert client.post(f"/triggers/{trigger_id}/enabled", data=data).status_code == 200
    assert _enabled(engine, trigger_id) is (not was)
    data["enabled"] = str(was).lower()
    client.post(f"/triggers/{trigger_id}/enabled", data=data)
    assert _enabled(engine, trigger_id) is was
    with session_scope(engine) as db_session:
        actions = list(db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert [a for a in actions if a.startswith("trigger.")] == (
        ["trigger.disable", "trigger.enable"] if was else ["trigger.enable", "trigger.disable"]
    )


def test_an_analyst_reads_the_triggers_but_cannot_switch_them(
    console: Console, engine: Engine
) -> None:
    client = console(Role.ANALYST)
    page = client.get("/triggers").text
    assert "/enabled" not in page
    with session_scope(engine) as db_session:
        trigger_id = db_session.scalars(select(Trigger.id)).first()
    assert trigger_id is not None
    token = csrf_of(client, "/triggers")
    response = client.post(
        f"/triggers/{trigger_id}/enabled", data={"csrf_token": token, "enabled": "true"}
    )
    assert response.status_code == 403
