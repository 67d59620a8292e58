"""Agents work tickets from the CLI and the API alike: list, show, answer (the answer goes
out as an SMS and joins the history), change; stock arrives by CSV and by API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.config import Settings
from tidings.db import session_scope
from tidings.inbound.service import store_replies
from tidings.members.models import Member, Store
from tidings.orders.models import Product
from tidings.providers.base import InboundReply

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai


def _ticket_from_a_member(engine: Engine) -> None:
    with session_scope(engine) as session:
        store = Store(code="S01", name="南山店")
        session.add(store)
        session.flush()
        session.add(Member(phone="+8613800000002", name="林嘉怡", store_id=store.id))
        session.flush()
        store_replies(
            db_session=session,
            replies=[InboundReply("ali", "+8613800000002", "我要找店长", NOW, "mo-1")],
            now=NOW,
            settings=Settings(),
        )


def _queued(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT phone, text, state FROM messages ORDER BY id"))
        return [tuple(row) for row in rows]


def test_an_agent_answers_from_the_cli(engine: Engine, cli: Any) -> None:
    _ticket_from_a_member(engine)
    with clock.frozen(NOW):
        listed = json.loads(cli("tickets", "list", "--json").output)
        [ticket] = listed["tickets"]
        assert (ticket["category"], ticket["queue"], ticket["status"]) == (
            "human",
            "store:S01",
            "open",
        )
        answered = cli(
            "tickets", "answer", str(ticket["id"]), "店长稍后致电您", "--agent", "agent-7", "--json"
        )
    result = json.loads(answered.output)
    assert result["ticket"]["status"] == "pending"
    assert [e["kind"] for e in result["ticket"]["history"]] == ["opened", "answer"]
    assert _queued(engine) == [("+8613800000002", "【tidings】店长稍后致电您", "queued")]
    shown = cli("tickets", "show", str(ticket["id"]))
    assert "agent-7 answer: 店长稍后致电您" in shown.output
    missing = cli("tickets", "show", "999")
    assert missing.exit_code == 1 and "no ticket 999" in missing.output


def test_an_agent_answers_and_solves_through_the_api(engine: Engine) -> None:
    _ticket_from_a_member(engine)
    with session_scope(engine) as session:
        _, key = accounts.create(db_session=session, name="console")
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    assert TestClient(create_app(engine)).get("/api/v1/tickets").status_code == 401
    with clock.frozen(NOW):
        [ticket] = client.get("/api/v1/tickets", params={"status": "open"}).json()["tickets"]
        url = f"/api/v1/tickets/{ticket['id']}"
        moved = client.patch(url, json={"assignee": "agent-2", "actor": "lead"}).json()
        assert moved["assignee"] == "agent-2"
        body = {"text": "已安排送货", "agent": "agent-2", "solve": True}
        answered = client.post(f"{url}/answer", json=body)
        again = client.post(f"{url}/answer", json=body)
    assert answered.json()["ticket"]["status"] == "solved"
    assert again.status_code == 409 and "solved" in again.json()["detail"]
    assert len(_queued(engine)) == 1
    assert client.get("/api/v1/tickets/999").status_code == 404


def test_stock_arrives_by_csv_and_by_api(engine: Engine, cli: Any, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        session.add_all([Store(code="S01", name="南山店"), Product(sku="M250", name="纯牛奶")])
        _, key = accounts.create(db_session=session, name="pos")
    csv = tmp_path / "stock.csv"
    csv.write_text("门店,商品编码,库存\nS01,M250,7\nS09,M250,3\nS01,M250,abc\n", encoding="utf-8")
    result = json.loads(cli("import", "stock", str(csv), "--json").output)
    assert (result["rows"], result["updated"], result["rejected"]) == (3, 1, 2)
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    answer = client.post(
        "/api/v1/stock:batch",
        json={
            "stock": [
                {"store_code": "S01", "sku": "M250", "quantity": 2},
                {"store_code": "S01", "sku": "X", "quantity": 1},
            ]
        },
    ).json()
    assert (answer["updated"], answer["rejected"]) == (1, 1)
    assert "sku 'X' is unknown" in answer["errors"][0]["reason"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT quantity FROM stock_levels")).scalar_one() == 2
