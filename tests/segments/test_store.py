"""Segments against a real store (SQLite and PostgreSQL): the CLI, the API and the snapshot."""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, update

from tidings import clock, scans
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope
from tidings.members.models import Member
from tidings.profiles.models import Profile
from tidings.segments import audience, service, snapshot

from .conftest import NOW, TODAY, fill_store


@pytest.fixture
def store(engine: Engine) -> Iterator[Engine]:
    """The five sample members in the test store, with the clock frozen on TODAY."""
    fill_store(engine)
    with clock.frozen(NOW):
        yield engine


@pytest.fixture
def client(store: Engine) -> TestClient:
    with session_scope(store) as db_session:
        _, key = accounts.create(db_session=db_session, name="console")
    return TestClient(create_app(store), headers={"Authorization": f"Bearer {key}"})


def test_the_audience_read_from_the_store_holds_every_field(store: Engine) -> None:
    frame = audience.load_audience(store, today=TODAY)
    assert frame["member_id"].to_list() == [1, 2, 3, 4, 5]
    first = frame.row(0, named=True)
    assert (first["city"], first["tier"], first["spend_90d"], first["consent"]) == (
        "上海",
        "gold",
        60_000,
        True,
    )
    assert sorted(first["tags"]) == ["vip", "榴莲爱好者"]
    assert frame.row(2, named=True)["lifecycle_stage"] == "never"
    assert frame.row(4, named=True)["tier"] == "bronze"


def test_count_through_the_cli(cli, store: Engine) -> None:
    result = cli("segment", "count", 'city == "上海" and spend_90d > 199.8', "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"count": 2, "sample": [1, 4]}
    history = cli("segment", "count", 'orders_in("水果", 30d) >= 2', "--json")
    assert json.loads(history.output) == {"count": 1, "sample": [1]}


def test_members_are_chosen_by_their_own_timezone(cli, store: Engine) -> None:
    with store.begin() as connection:
        connection.execute(update(Member).where(Member.id == 3).values(timezone="Asia/Urumqi"))
    snapshot.invalidate(store)
    result = cli("segment", "count", 'timezone == "Asia/Urumqi"', "--json")
    assert json.loads(result.output) == {"count": 1, "sample": [3]}


def test_a_bad_rule_shows_a_caret_under_its_column(cli, store: Engine) -> None:
    rule = 'city == "上海" and teir == "gold"'
    result = cli("segment", "count", rule)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == rule
    # The two Chinese characters take two columns each on a terminal.
    column = rule.index("teir") + 1
    assert lines[1] == " " * (column - 1 + 2) + "^"
    assert lines[2] == f"error: column {column}: unknown field 'teir'; did you mean 'tier'?"


def test_save_list_show_and_delete_through_the_cli(cli, store: Engine) -> None:
    assert cli("segment", "save", "shanghai", 'city == "上海"').exit_code == 0
    saved = cli("segment", "save", "shanghai-gold", 'in_segment("shanghai") and tier == "gold"')
    assert saved.exit_code == 0, saved.output
    listed = json.loads(cli("segment", "list", "--json").output)
    assert [(row["name"], row["size"]) for row in listed] == [("shanghai", 2), ("shanghai-gold", 1)]
    shown = json.loads(cli("segment", "show", "shanghai-gold", "--json").output)
    assert (shown["size"], shown["sample"]) == (1, [1])
    assert shown["tree"]["op"] == "and"

    refused = cli("segment", "delete", "shanghai")
    assert refused.exit_code == 2
    assert "used by shanghai-gold" in refused.output
    assert cli("segment", "delete", "shanghai-gold").exit_code == 0
    assert cli("segment", "delete", "shanghai").exit_code == 0
    assert json.loads(cli("segment", "list", "--json").output) == []


def test_saving_refuses_cycles_and_unknown_segments(cli, store: Engine) -> None:
    assert cli("segment", "save", "a", "churn_risk").exit_code == 0
    assert cli("segment", "save", "b", 'in_segment("a") or consent').exit_code == 0
    cycle = cli("segment", "save", "a", 'in_segment("b")')
    assert cycle.exit_code == 2
    assert "segment 'a' refers to itself: a → b → a" in cycle.output
    unknown = cli("segment", "save", "c", 'in_segment("bb")')
    assert unknown.exit_code == 2
    assert "unknown segment 'bb'; did you mean 'b'?" in unknown.output
    # The first rule of 'a' is kept.
    assert json.loads(cli("segment", "show", "a", "--json").output)["rule"] == "churn_risk == true"


def test_fields_are_listed(cli) -> None:
    listed = json.loads(cli("segment", "fields", "--json").output)
    by_name = {row["name"]: row for row in listed}
    assert by_name["spend_90d"]["type"] == "money"
    assert by_name["tier"]["zh"] == "会员等级"
    table = cli("segment", "fields")
    assert "days_since_last_order" in table.output


def test_the_snapshot_follows_profile_changes(store: Engine, monkeypatch) -> None:
    monkeypatch.setattr(snapshot, "RECHECK_INTERVAL", 0.0)
    assert service.count(engine=store, rule='tier == "gold"', today=TODAY)["count"] == 1
    with store.begin() as connection:
        connection.execute(
            update(Profile)
            .where(Profile.member_id == 2)
            .values(tier="gold", computed_at=clock.now().replace(microsecond=1))
        )
    assert service.count(engine=store, rule='tier == "gold"', today=TODAY) == {
        "count": 2,
        "sample": [1, 2],
    }


def test_the_snapshot_follows_moved_members_and_removed_profiles(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "RECHECK_INTERVAL", 0.0)
    assert service.count(engine=store, rule='city == "北京"', today=TODAY)["sample"] == [2, 5]
    assert service.count(engine=store, rule='tier == "gold"', today=TODAY)["count"] == 1
    with store.begin() as connection:
        moved = clock.now().replace(microsecond=1)
        connection.execute(
            update(Member).where(Member.id == 2).values(store_id=1, updated_at=moved)
        )
        connection.execute(delete(Profile).where(Profile.tier == "gold"))
    assert service.count(engine=store, rule='city == "北京"', today=TODAY)["sample"] == [5]
    assert service.count(engine=store, rule='tier == "gold"', today=TODAY)["count"] == 0


def test_segments_through_the_api(client: TestClient) -> None:
    created = client.post(
        "/api/v1/segments",
        json={"name": "at-risk", "rule": 'rfm_segment == "At risk"', "description": "流失预警"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["tree"] == {
        "op": "==",
        "left": {"field": "rfm_segment"},
        "right": {"text": "At risk"},
    }
    again = client.post("/api/v1/segments", json={"name": "at-risk", "rule": "churn_risk"})
    assert again.status_code == 409
    listed = client.get("/api/v1/segments").json()
    assert [(row["name"], row["size"]) for row in listed] == [("at-risk", 1)]

    changed = client.put("/api/v1/segments/at-risk", json={"rule": "not churn_risk"})
    assert changed.status_code == 200
    assert changed.json()["description"] == "流失预警"
    assert client.get("/api/v1/segments/at-risk").json()["rule"] == "not churn_risk == true"
    assert client.get("/api/v1/segments/nobody").status_code == 404
    assert client.delete("/api/v1/segments/at-risk").status_code == 204
    assert client.get("/api/v1/segments").json() == []


def test_count_and_parse_through_the_api(client: TestClient) -> None:
    counted = client.post("/api/v1/segments:count", json={"rule": 'city == "北京"'})
    assert counted.json() == {"count": 2, "sample": [2, 5]}
    tree = {"op": "in", "left": {"text": "vip"}, "right": {"field": "tags"}}
    assert client.post("/api/v1/segments:count", json={"tree": tree}).json() == {
        "count": 1,
        "sample": [1],
    }
    parsed = client.post("/api/v1/segments:parse", json={"rule": "TIER in ('gold')"})
    assert parsed.status_code == 422  # field names are case-sensitive
    parsed = client.post("/api/v1/segments:parse", json={"rule": "tier IN ('gold')"})
    assert parsed.json() == {
        "text": 'tier in ("gold")',
        "tree": {"op": "in", "left": {"field": "tier"}, "items": [{"text": "gold"}]},
    }


def test_a_bad_rule_is_a_problem_with_its_position(client: TestClient) -> None:
    response = client.post("/api/v1/segments:count", json={"rule": "tier == gold"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["position"], body["rule"]) == (9, "tier == gold")
    assert (
        body["detail"]
        == "column 9: unknown field 'gold'; to compare with a text, quote it: \"gold\""
    )
    both = client.post("/api/v1/segments:count", json={"rule": "churn_risk", "tree": {}})
    assert both.status_code == 422


def test_fields_through_the_api(client: TestClient) -> None:
    fields = client.get("/api/v1/segments/fields").json()
    assert {
        "name": "consent",
        "type": "bool",
        "zh": "营销短信授权",
        "en": "Latest marketing consent is an opt-in",
    } in fields


def test_child_processes_read_the_same_audience_as_this_process(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a SQLite file, big tables are read by children through ADBC, which takes each
    column's type from its first rows: text, dates and times with nulls among them, and a
    table with real numbers (read here), must come out as this process reads them."""
    if store.dialect.name != "sqlite":
        pytest.skip("only a SQLite file's tables are read by child processes")
    campaign = {"phone", "phone_status", "name", "tier", "consent", "best_hour", "birthday"}
    here = [audience.load_audience(store, today=TODAY, fields=f) for f in (None, campaign)]
    monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = [audience.load_audience(store, today=TODAY, fields=f) for f in (None, campaign)]
    scans.stop_kept_children()  # a child's CPU is counted here once it has ended
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert after.ru_utime + after.ru_stime > before.ru_utime + before.ru_stime
    assert children[0].equals(here[0]) and children[1].equals(here[1])
    assert here[1]["tier"].null_count() and here[1]["birthday"].null_count()
