"""`GET /s/{code}`: a person's click is recorded and sent on to the campaign's URL with its
UTM parameters; robots and prefetches are recorded apart; unknown codes find a 404 page."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from campaigns.conftest import add_members, midday_zone
from tidings.app import create_app
from tidings.db import session_scope
from tidings.inbound.timeline import member_timeline
from tidings.tracking import service

from .conftest import create_campaign, link_rows, plan_campaign, send_campaign

pytestmark = pytest.mark.usefixtures("short_links")
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI"
)


@pytest.fixture
def links(engine: Engine) -> pl.DataFrame:
    """The links of a planned two-variant campaign for six members."""
    add_members(engine, 6, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    return link_rows(engine, campaign)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), follow_redirects=False) as test_client:
        yield test_client


def clicks(engine: Engine) -> pl.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT link_id, user_agent, is_robot, robot_reason FROM clicks ORDER BY id")
        ).all()
    schema = ["link_id", "user_agent", "is_robot", "robot_reason"]
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def test_a_click_goes_to_the_target_with_utm_and_is_recorded(
    engine: Engine, links: pl.DataFrame
) -> None:
    link = links.row(0, named=True)
    with TestClient(create_app(engine), follow_redirects=False) as client:
        answer = client.get(f"/s/{link['code']}", headers={"User-Agent": PHONE})
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "shop.example.com", "/sale")
    assert target.fragment == "top"
    campaign = str(link_rows(engine)["campaign_id"][0])
    variant = "A" if "周末鲜果8折" in link["text"] else "B"
    assert parse_qsl(target.query) == [
        ("store", "SH01"),
        ("utm_source", "sms"),
        ("utm_medium", "sms"),
        ("utm_campaign", campaign),
        ("utm_content", variant),
    ]
    recorded = clicks(engine)
    assert recorded.rows() == [(link["id"], PHONE, False, None)]


def test_utm_options_of_the_campaign_and_parameters_the_url_has(engine: Engine) -> None:
    add_members(engine, 1, timezone=midday_zone())
    campaign = create_campaign(
        engine,
        link="https://shop.example.com/?utm_source=wechat&a=1",
        utm_medium="text",
        utm_campaign="fruit-weekend",
        variants=[{"template": "鲜果到店 {link}"}],
    )
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    target = link_rows(engine, campaign)["target_url"][0]
    assert parse_qsl(urlsplit(target).query) == [
        ("utm_source", "wechat"),
        ("a", "1"),
        ("utm_medium", "text"),
        ("utm_campaign", "fruit-weekend"),
        ("utm_content", "A"),
    ]
    plain = create_campaign(
        engine, name="无参数", link="https://shop.example.com/x", link_utm=False
    )
    plan_campaign(engine, plain)
    send_campaign(engine, plain)
    assert link_rows(engine, plain)["target_url"][0] == "https://shop.example.com/x"


ROBOTS = [
    ("GET", {"User-Agent": "Mozilla/5.0 (compatible; WeChatBot/1.0)"}, "preview:wechat"),
    ("GET", {"User-Agent": "QQ-URL-Manager"}, "preview:qq"),
    (
        "GET",
        {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        "preview:slack",
    ),
    ("GET", {"User-Agent": "TelegramBot (like TwitterBot)"}, "preview:telegram"),
    ("GET", {"User-Agent": "WhatsApp/2.23.20.0 A"}, "preview:whatsapp"),
    ("GET", {"User-Agent": "facebookexternalhit/1.1"}, "preview:facebook"),
    ("GET", {"User-Agent": "Twitterbot/1.0"}, "preview:twitter"),
    (
        "GET",
        {"User-Agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605 (Applebot/0.1)"},
        "preview:apple",
    ),
    ("GET", {"User-Agent": "curl/8.5.0"}, "tool:curl"),
    ("GET", {"User-Agent": "python-requests/2.32"}, "tool:python"),
    ("GET", {"User-Agent": "Mozilla/5.0 (compatible; SomeCrawler/2.0)"}, "robot:crawler"),
    ("GET", {"User-Agent": "LinkChecker bot/3"}, "robot:bot"),
    ("GET", {"User-Agent": ""}, "no_user_agent"),
    ("GET", {"User-Agent": PHONE, "Purpose": "prefetch"}, "prefetch:purpose"),
    ("GET", {"User-Agent": PHONE, "Sec-Purpose": "prefetch;prerender"}, "prefetch:sec-purpose"),
    ("GET", {"User-Agent": PHONE, "X-Moz": "prefetch"}, "prefetch:x-moz"),
    ("HEAD", {"User-Agent": PHONE}, "head"),
]


@pytest.mark.parametrize(("method", "headers", "reason"), ROBOTS)
def test_robots_and_prefetches_are_recorded_apart_and_not_counted(
    engine: Engine, links: pl.DataFrame, method: str, headers: dict[str, str], reason: str
) -> None:
    link = links.row(0, named=True)
    with TestClient(create_app(engine), follow_redirects=False) as client:
        answer = client.request(method, f"/s/{link['code']}", headers=headers)
    assert answer.status_code == 302
    assert clicks(engine).select("is_robot", "robot_reason").rows() == [(True, reason)]
    with session_scope(engine) as session:
        counts = service.click_counts(db_session=session, campaign_id=_campaign_of(link))
        summary = service.click_summary(db_session=session, campaign_id=_campaign_of(link))
    assert counts["clicks"].sum() == 0
    assert counts["robot_requests"].sum() == 1
    assert summary["clicked_messages"] == 0
    assert summary["robot_requests"] == {reason: 1}


def _campaign_of(link: dict[str, object]) -> int:
    return int(str(link["campaign_id"]))


@pytest.mark.parametrize("code", ["Zz9Zz9Z", "abc", "abc$%^1", "a" * 40])
def test_an_unknown_or_malformed_code_finds_a_page_and_records_nothing(
    engine: Engine, links: pl.DataFrame, code: str
) -> None:
    with TestClient(create_app(engine), follow_redirects=False) as client:
        answer = client.get(f"/s/{code}", headers={"User-Agent": PHONE})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "链接无效" in answer.text and "does not exist" in answer.text
    assert clicks(engine).height == 0


def test_clicks_wait_in_memory_and_are_all_written_when_the_server_stops(
    engine: Engine, links: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CLICK_FLUSH_SECONDS", "3600")  # no flush before the stop
    from tidings.config import get_settings

    get_settings.cache_clear()
    codes = links["code"].to_list()
    with TestClient(create_app(engine), follow_redirects=False) as client:
        for _ in range(5):
            for code in codes:
                assert client.get(f"/s/{code}", headers={"User-Agent": PHONE}).status_code == 302
        assert clicks(engine).height == 0  # all still waiting for the writer
        assert client.app.state.short_links.clicks.waiting() == 5 * len(codes)
    recorded = clicks(engine)
    assert recorded.height == 5 * len(codes)
    assert sorted(recorded["link_id"].unique()) == sorted(links["id"])
    with session_scope(engine) as session:
        counts = service.click_counts(
            db_session=session, campaign_id=_campaign_of(links.row(0, named=True))
        )
    assert counts["clicks"].to_list() == [5] * len(codes)
    assert counts["first_clicked_at"].null_count() == 0


def test_clicks_show_in_the_member_timeline(
    engine: Engine, links: pl.DataFrame, client: TestClient
) -> None:
    link = links.row(0, named=True)
    client.get(f"/s/{link['code']}", headers={"User-Agent": PHONE})
    client.get(f"/s/{link['code']}", headers={"User-Agent": "facebookexternalhit/1.1"})
    client.app.state.short_links.clicks.flush()
    with session_scope(engine) as session:
        entries = member_timeline(db_session=session, member_id=link["member_id"])
    shown = [entry for entry in entries if entry["kind"] == "click"]
    assert sorted(str(entry["robot"]) for entry in shown) == ["None", "preview:facebook"]
    person = next(entry for entry in shown if entry["robot"] is None)
    assert person["code"] == link["code"]
    assert "opened the link" in person["summary"]
