"""`tidings report attribute|campaign` and `/api/v1/reports/campaigns/{id}`: the same numbers
as JSON, CSV and Excel, and clear refusals."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope
from tidings.tracking.models import Attribution

from .world import SENT, World, hand_built_campaign

LATER = SENT + timedelta(days=10)


@pytest.fixture
def campaign_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        return hand_built_campaign(World(session))["campaign"]


def test_attribute_credits_orders_once(cli, engine: Engine, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(LATER):
        first = cli("report", "attribute", "--since", "2026-11-01", "--json")
        again = cli("report", "attribute", "--since", "2026-11-01", "--json")

    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["by_kind"] == {"click": 1, "coupon": 1}
    assert json.loads(again.output)["credited"] == 0
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Attribution)) == 2


def test_attribute_refuses_a_date_it_cannot_read(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("report", "attribute", "--since", "1 Nov")

    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Attribution)) == 0


def test_campaign_json_and_table(cli, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(LATER):
        as_json = cli("report", "campaign", str(campaign_id), "--json")
        table = cli("report", "campaign", str(campaign_id))

    report = json.loads(as_json.output)
    assert set(report) >= {"campaign", "funnel", "by_variant", "by_store", "by_day", "ab", "lift"}
    assert report["funnel"]["converted"] == 2 and report["funnel"]["revenue_cents"] == 25_000
    assert table.exit_code == 0
    assert "¥250.00" in table.output and "A/B B vs A" in table.output
    assert "variant B" in table.output and "BJ01" in table.output and "2026-11-02" in table.output


def test_campaign_csv_has_a_row_per_level(cli, campaign_id: int, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out" / "report.csv"
    with clock.frozen(LATER):
        result = cli("report", "campaign", str(campaign_id), "--csv", "--out", str(path))

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    keys = {(row["level"], row["key"]) for row in rows}
    assert keys == {
        ("campaign", str(campaign_id)),
        ("variant", "A"),
        ("variant", "B"),
        ("store", "SH01"),
        ("store", "BJ01"),
        ("day", "2026-11-02"),
    }
    by_key = {row["key"]: row for row in rows}
    assert (by_key["A"]["revenue_cents"], by_key["B"]["opted_out"]) == ("20000", "1")


def test_campaign_xlsx_has_a_sheet_per_level(cli, campaign_id: int, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "report.xlsx"
    with clock.frozen(LATER):
        result = cli("report", "campaign", str(campaign_id), "--xlsx", "--out", str(path))

    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(path) as workbook:
        listing = workbook.read("xl/workbook.xml").decode()
        strings = workbook.read("xl/sharedStrings.xml").decode()
    for sheet in ("funnel", "by_variant", "by_store", "by_day", "ab", "lift"):
        assert f'name="{sheet}"' in listing
    assert "BJ01" in strings and "2026-11-02" in strings


def test_an_unknown_campaign_exits_with_a_message(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("report", "campaign", "404")

    assert result.exit_code == 2
    assert "404" in result.output


def test_only_one_format_at_a_time(cli, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    result = cli("report", "campaign", str(campaign_id), "--csv", "--xlsx")

    assert result.exit_code == 2
    assert "one of" in result.output


@pytest.fixture
def client(engine: Engine) -> TestClient:
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="console")
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})


def test_api_answers_the_same_report(client: TestClient, campaign_id: int) -> None:
    with clock.frozen(LATER):
        answer = client.get(f"/api/v1/reports/campaigns/{campaign_id}")

    assert answer.status_code == 200
    body = answer.json()
    assert body["funnel"]["sent"] == 5
    assert [row["variant"] for row in body["by_variant"]] == ["A", "B"]
    assert body["chart_data"]["daily"]["days"] == ["2026-11-02"]


def test_api_serves_the_charts_as_png(client: TestClient, campaign_id: int) -> None:
    with clock.frozen(LATER):
        funnel = client.get(f"/api/v1/reports/campaigns/{campaign_id}/charts/funnel.png")

    assert funnel.status_code == 200
    assert funnel.headers["content-type"] == "image/png"
    assert funnel.content.startswith(b"\x89PNG")


def test_campaign_charts_are_written_where_asked(cli, campaign_id: int, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(LATER):
        result = cli("report", "campaign", str(campaign_id), "--charts", str(tmp_path / "c"))

    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "funnel.png").read_bytes().startswith(b"\x89PNG")
    assert f"chart funnel: {tmp_path / 'c' / 'funnel.png'}" in result.output.replace("\n", "")


def test_api_refuses_unknown_campaigns_charts_and_missing_keys(
    client: TestClient, campaign_id: int
) -> None:
    missing = client.get("/api/v1/reports/campaigns/999")
    no_chart = client.get(f"/api/v1/reports/campaigns/{campaign_id}/charts/nothing.png")
    anonymous = TestClient(client.app).get(f"/api/v1/reports/campaigns/{campaign_id}")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "999" in missing.json()["detail"]
    assert no_chart.status_code == 404 and "nothing" in no_chart.json()["detail"]
    assert anonymous.status_code == 401


def test_an_orders_batch_is_credited_as_it_arrives(
    client: TestClient, engine: Engine, campaign_id: int
) -> None:
    # m2 was delivered the campaign's message; it orders the next day (view-through).
    order = {
        "order_id": "POS-LATE-1",
        "ordered_at": (SENT + timedelta(days=1)).isoformat(),
        "amount": "88.00",
        "member_code": "M2",
    }
    with clock.frozen(LATER):
        answer = client.post("/api/v1/orders:batch", json={"orders": [order]})

    assert answer.status_code == 200, answer.text
    with engine.connect() as connection:
        kinds = connection.execute(
            select(Attribution.kind, Attribution.revenue_cents).where(
                Attribution.campaign_id == campaign_id, Attribution.revenue_cents == 8_800
            )
        ).all()
    assert [(str(kind), cents) for kind, cents in kinds] == [("view", 8_800)]


def test_an_orders_csv_import_is_credited(
    cli, engine: Engine, campaign_id: int, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "orders.csv"
    ordered = (SENT + timedelta(days=1)).isoformat()
    path.write_text(f"order_id,ordered_at,amount,member_code\nPOS-CSV-1,{ordered},66.00,M5\n")
    with clock.frozen(LATER):
        result = cli("import", "orders", str(path))

    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        credited = connection.scalar(
            select(func.count())
            .select_from(Attribution)
            .where(Attribution.campaign_id == campaign_id, Attribution.revenue_cents == 6_600)
        )
    assert credited == 1
