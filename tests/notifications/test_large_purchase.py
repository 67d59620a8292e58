"""The large-purchase notice: an order above the amount brings the anti-fraud reminder at
once, once per order, through the API's order batch; smaller and old orders bring none."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock

from .conftest import NOW, PHONE


def _line(order: str, amount: str, at: str = "2026-12-02 13:30:00") -> dict[str, object]:
    return {"order_id": order, "ordered_at": at, "amount": amount, "phone": PHONE}


def _notices(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT n.idempotency_key, m.text FROM notifications n"
                " JOIN messages m ON m.id = n.message_id ORDER BY n.id"
            )
        ).all()
    return [(str(key), str(body)) for key, body in rows]


def test_a_large_order_brings_one_reminder(engine: Engine, client: TestClient, member: int) -> None:
    batch = {
        "orders": [
            _line("SO-1", "2680.50"),
            _line("SO-2", "99"),
            _line("SO-OLD", "5000", at="2026-11-20 10:00:00"),
        ]
    }
    with clock.frozen(NOW):
        assert client.post("/api/v1/orders:batch", json=batch).status_code == 200
        assert client.post("/api/v1/orders:batch", json=batch).status_code == 200
    notices = _notices(engine)
    assert len(notices) == 1
    key, body = notices[0]
    with engine.connect() as connection:
        order = connection.execute(
            text("SELECT id FROM orders WHERE external_id = 'SO-1'")
        ).scalar_one()
    assert key == f"large-purchase:order:{order}"
    assert "】您刚刚消费2,680.50元。谨防诈骗" in body
