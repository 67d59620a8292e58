"""Recommendations through the store: refresh, `tidings profiles recommend`, the API, segment
rules and templates, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.app import create_app
from tidings.bulk import bulk_insert
from tidings.db import session_scope

UTC_TIME = pl.Datetime("us", "UTC")
AS_OF = "2025-06-30"
NOON = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
PRODUCTS = {
    "BB01": ("婴儿纸尿裤 L码", "母婴"),
    "BB02": ("婴儿配方奶粉 3段", "母婴"),
    "FR01": ("红富士苹果", "水果"),
}


def basket_of(member: int) -> list[str]:
    """Members 1-60 buy nappies; 1-36 formula too, twice; 61-120 only apples."""
    if member <= 36:
        return ["BB01", "BB02", "BB02"]
    if member <= 60:
        return ["BB01"]
    return ["FR01"]


def seed(engine: Engine, members: int = 120) -> None:
    """Members with marketing consent, one order per product they buy."""
    now = clock.now()
    ids = list(range(1, members + 1))
    people = pl.DataFrame(
        {"id": ids, "code": [f"M{i}" for i in ids], "phone": [f"+86139{i:08d}" for i in ids]}
    ).with_columns(
        phone_status=pl.lit("ok"),
        birthday_is_lunar=pl.lit(False),
        points=pl.lit(0),
        created_at=pl.lit(now, dtype=UTC_TIME),
        updated_at=pl.lit(now, dtype=UTC_TIME),
    )
    consent = pl.DataFrame({"member_id": ids}).with_columns(
        kind=pl.lit("opt_in"),
        topic=pl.lit("marketing"),
        source=pl.lit("test"),
        occurred_at=pl.lit(now, dtype=UTC_TIME),
        created_at=pl.lit(now, dtype=UTC_TIME),
    )
    products = pl.DataFrame(
        {
            "sku": list(PRODUCTS),
            "name": [name for name, _ in PRODUCTS.values()],
            "category": [category for _, category in PRODUCTS.values()],
        }
    ).with_columns(id=pl.int_range(1, len(PRODUCTS) + 1))
    lines = pl.DataFrame(
        [(member, sku) for member in ids for sku in basket_of(member)],
        schema=["member_id", "sku"],
        orient="row",
    ).with_columns(id=pl.int_range(1, pl.len() + 1))
    orders = lines.select(
        "id",
        "member_id",
        external_id=pl.format("O{}", "id"),
        ordered_at=pl.lit(NOON, dtype=UTC_TIME) - pl.duration(days=pl.col("id") % 50),
        amount_cents=pl.lit(10_000),
        discount_cents=pl.lit(0),
        created_at=pl.lit(now, dtype=UTC_TIME),
    )
    items = lines.select(
        order_id="id",
        sku="sku",
        line_no=pl.lit(1),
        category=pl.col("sku").replace_strict({s: c for s, (_, c) in PRODUCTS.items()}),
        quantity=pl.lit(1),
        amount_cents=pl.lit(10_000),
        discounted=pl.lit(False),
    )
    with session_scope(engine) as session:
        for table, frame in (
            ("members", people),
            ("consent_events", consent),
            ("products", products),
            ("orders", orders),
            ("order_items", items),
        ):
            bulk_insert(session, table, frame)


def run_json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def refreshed(cli: Any, engine: Engine) -> Any:
    seed(engine)
    run_json(cli, "profiles", "refresh", "--as-of", AS_OF)
    return cli


def test_a_nappy_buyer_is_recommended_formula_with_the_reason(refreshed: Any) -> None:
    shown = run_json(refreshed, "profiles", "recommend", "M40")
    assert shown["sku"] == "BB02"
    assert shown["product"] == "婴儿配方奶粉 3段"
    assert shown["category"] == "母婴"
    assert shown["basis"] == "product"
    assert shown["confidence"] == pytest.approx(0.6)  # 36 of the 60 nappy buyers
    assert shown["lift"] == pytest.approx(2.0)  # against 36 of 120 members
    assert shown["reason_en"] == (
        "bought together with 婴儿纸尿裤 L码 by 60% of members who buy 婴儿纸尿裤 L码"
    )
    assert shown["reason_zh"] == "购买「婴儿纸尿裤 L码」的会员中，60% 也购买了「婴儿配方奶粉 3段」"
    plain = refreshed("profiles", "recommend", "+8613900000040")
    assert plain.exit_code == 0, plain.output
    assert "婴儿配方奶粉 3段" in plain.stdout and "60%" in plain.stdout


def test_a_member_without_a_recommendation_is_told_why(refreshed: Any) -> None:
    result = refreshed("profiles", "recommend", "M100")
    assert result.exit_code == 2
    assert "no recommendation as of 2025-06-30" in result.output
    unknown = refreshed("profiles", "recommend", "M999")
    assert unknown.exit_code == 2
    assert "no member has the phone or member code 'M999'" in unknown.output


def test_the_api_answers_the_recommendation_or_a_problem(refreshed: Any) -> None:
    key = run_json(refreshed, "apikey", "create", "crm")["key"]
    client = TestClient(create_app(refreshed.engine))
    client.headers["Authorization"] = f"Bearer {key}"
    answer = client.get("/api/v1/members/40/recommendation")
    assert answer.status_code == 200
    assert answer.json()["product"] == "婴儿配方奶粉 3段"
    assert answer.json()["reason_zh"].startswith("购买「婴儿纸尿裤 L码」的会员中，60%")
    for member, expected in ((100, "no recommendation"), (999, "no member 999")):
        missing = client.get(f"/api/v1/members/{member}/recommendation")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert expected in missing.json()["detail"]


def test_segment_rules_and_templates_use_the_recommendation(refreshed: Any) -> None:
    """Members 1-36 are offered nappies again (bought once), 37-60 formula: 60 in 母婴."""
    counted = run_json(refreshed, "segment", "count", 'recommended_category == "母婴"')
    assert counted["count"] == 60
    assert run_json(refreshed, "segment", "count", 'recommended_category == "水果"')["count"] == 0
    created = run_json(
        refreshed,
        "campaign",
        "create",
        "--name",
        "母婴推荐",
        "--rule",
        'recommended_product == "婴儿配方奶粉 3段"',
        "--template",
        "{recommended_product}会员价，{recommended_category}专区满199减30",
    )
    plan = run_json(refreshed, "campaign", "plan", str(created["id"]))
    assert plan["audience"] == 24 and plan["planned"] == 24
    with refreshed.engine.connect() as connection:
        texts = connection.execute(
            text("SELECT DISTINCT text FROM messages WHERE campaign_id = :id"),
            {"id": created["id"]},
        ).scalars()
        shown = list(texts)
    assert len(shown) == 1 and "】婴儿配方奶粉 3段会员价，母婴专区满199减30" in shown[0]


def test_a_second_refresh_forgets_a_recommendation_that_no_longer_holds(
    refreshed: Any, engine: Engine
) -> None:
    with session_scope(engine) as session:
        session.execute(text("DELETE FROM order_items WHERE sku = 'BB02'"))
    run_json(refreshed, "profiles", "refresh", "--as-of", AS_OF)
    result = refreshed("profiles", "recommend", "M40")
    assert result.exit_code == 2
    assert "no recommendation" in result.output


def test_the_demo_step_names_the_most_offered_products_and_one_reason(
    refreshed: Any, engine: Engine
) -> None:
    from tidings.demo.recommendations import recommendation_line

    line = recommendation_line(engine)
    assert line.startswith("60 members have a recommendation;")
    assert "most offered: 婴儿纸尿裤 L码 36, 婴儿配方奶粉 3段 24;" in line
    # Formula buyers all buy nappies: the surest offer, to the first of them.
    reason = "购买「婴儿配方奶粉 3段」的会员中，100% 也购买了「婴儿纸尿裤 L码」"
    assert line.endswith(f"e.g. M1: 婴儿纸尿裤 L码 ({reason})")
