"""Planning a campaign with {link}: each planned message shows its own short link, the same
when planned again, stored once per message when the message is sent."""

from __future__ import annotations

import polars as pl
import pytest
from sqlalchemy import Engine, text

from campaigns.conftest import add_members, message_rows, midday_zone
from tidings.campaigns.service import CampaignError
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.segments.snapshot import invalidate
from tidings.tracking import codes
from tidings.tracking.codes import CODE_LENGTH, code_for, with_codes

from .conftest import SHORT_DOMAIN, create_campaign, link_rows, plan_campaign, send_campaign

pytestmark = pytest.mark.usefixtures("short_links")
SHORT_LINK = rf"{SHORT_DOMAIN}/s/[0-9A-Za-z]{{{CODE_LENGTH}}}"


def test_each_planned_message_shows_its_own_short_link(engine: Engine) -> None:
    add_members(engine, 40, consent_every=2, timezone=midday_zone())
    campaign = create_campaign(engine)
    summary = plan_campaign(engine, campaign)
    messages = message_rows(engine, campaign)
    planned = messages.filter(pl.col("state") == "planned")
    assert planned.height == summary["planned"] == 20
    assert planned["text"].str.contains(SHORT_LINK).all(), planned["text"].to_list()
    assert not messages["text"].drop_nulls().str.contains("shop.example.com").any()
    assert link_rows(engine, campaign).height == 0  # a plan only shows them
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    # One link per message sent, none for the members skipped (no consent).
    assert sorted(links["member_id"]) == sorted(planned["member_id"])
    assert links["code"].n_unique() == links.height
    assert (links["state"] == "queued").all()
    shown = links.select(pl.col("text").str.contains(SHORT_DOMAIN + "/s/" + pl.col("code")))
    assert shown.to_series().all()


def test_planning_again_keeps_the_codes_and_adds_no_link(engine: Engine) -> None:
    add_members(engine, 30, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    first = message_rows(engine, campaign).select("member_id", "text")
    add_members(engine, 5, timezone=midday_zone(), first_id=31)
    invalidate()  # the new members join the audience
    plan_campaign(engine, campaign)
    second = message_rows(engine, campaign).select("member_id", "text")
    assert (
        second.filter(pl.col("member_id") <= 30).sort("member_id").equals(first.sort("member_id"))
    )
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    assert links.height == 35 and links["code"].n_unique() == 35
    shown = links.select(pl.col("text").str.contains(SHORT_DOMAIN + "/s/" + pl.col("code")))
    assert shown.to_series().all()


def test_codes_are_the_keyed_hash_of_campaign_and_member(engine: Engine) -> None:
    add_members(engine, 3, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    expected = [
        code_for(secret="tracking-tests", campaign_id=campaign, member_id=m)
        for m in links["member_id"]
    ]
    assert links["code"].to_list() == expected
    other = [code_for(secret="another key", campaign_id=campaign, member_id=m) for m in (1, 2)]
    assert set(other).isdisjoint(expected)


def test_the_length_is_measured_with_the_short_link_in_it(engine: Engine) -> None:
    add_members(engine, 2, timezone=midday_zone())
    campaign = create_campaign(engine, variants=[{"template": "鲜果" * 20 + "{link}"}])
    plan_campaign(engine, campaign)
    with engine.connect() as connection:
        texts = connection.execute(
            text("SELECT text, parts FROM messages WHERE campaign_id = :id"), {"id": campaign}
        ).all()
    # 【tidings】 (10) + 40 + the short link (29) + " 拒收请回复R" (7) = 86 > 70: two parts.
    assert all(len(body) == 86 and parts == 2 for body, parts in texts)


def test_codes_that_meet_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two characters of base62 (3,844 codes) for 500 members: many meet at the first try.
    monkeypatch.setattr(codes, "CODE_LENGTH", 2)
    monkeypatch.setattr(codes, "_SPACE", 62**2)
    members = pl.DataFrame({"member_id": range(1, 501)})
    coded = with_codes(members, secret="k", campaign_id=1)
    assert coded["code"].n_unique() == 500
    assert coded["attempt"].max() > 0
    for member_id, attempt, code in coded.sample(50, seed=1).rows():
        assert code == code_for(secret="k", campaign_id=1, member_id=member_id, attempt=attempt)


def test_a_code_another_campaign_holds_is_replaced_in_link_and_text(engine: Engine) -> None:
    add_members(engine, 4, timezone=midday_zone())
    campaign = create_campaign(engine)
    taken = code_for(secret="tracking-tests", campaign_id=campaign, member_id=2)
    with session_scope(engine) as session:
        session.execute(
            text(
                "INSERT INTO short_links (code, target_url, created_at)"
                " VALUES (:code, 'https://elsewhere.example.com', CURRENT_TIMESTAMP)"
            ),
            {"code": taken},
        )
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    second = links.filter(pl.col("member_id") == 2).row(0, named=True)
    assert second["code"] == code_for(
        secret="tracking-tests", campaign_id=campaign, member_id=2, attempt=1
    )
    assert f"{SHORT_DOMAIN}/s/{second['code']}" in second["text"]
    assert taken not in second["text"]
    assert links["code"].n_unique() == 4


def test_a_link_that_is_no_url_is_refused(engine: Engine) -> None:
    with pytest.raises(CampaignError, match="full http"):
        create_campaign(engine, link="shop.example.com/sale")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM campaigns")).scalar_one() == 0


def test_links_on_the_short_domain_pass_the_content_check(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", "https://go.brand-example.com/")
    get_settings.cache_clear()
    add_members(engine, 3, timezone=midday_zone())
    campaign = create_campaign(engine)
    summary = plan_campaign(engine, campaign)
    assert summary["planned"] == 3 and summary["skipped"] == {}
    texts = message_rows(engine, campaign)["text"]
    assert texts.str.contains(r"https://go\.brand-example\.com/s/\w{7} ").all()
    # The same link written into the template by hand, on a domain of no one's, is stopped.
    stray = create_campaign(
        engine, name="外链", variants=[{"template": "见 https://x.example.org/a"}]
    )
    assert plan_campaign(engine, stray)["skipped"] == {
        "content:foreign_link:https://x.example.org/a": 3
    }


def test_codes_spell_no_listed_word(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # One letter as a blocked word: about one code in five would spell it.
    words = tmp_path / "words.txt"
    words.write_text("q\n", encoding="utf-8")
    monkeypatch.setenv("TIDINGS_SENSITIVE_WORDS_FILE", str(words))
    get_settings.cache_clear()
    add_members(engine, 60, timezone=midday_zone())
    campaign = create_campaign(engine, variants=[{"template": "鲜果8折 {link}"}])
    summary = plan_campaign(engine, campaign)
    assert summary["planned"] == 60 and summary["skipped"] == {}
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    assert not links["code"].str.contains("(?i)q").any()
    first_try = [
        code_for(secret="tracking-tests", campaign_id=campaign, member_id=m)
        for m in links["member_id"]
    ]
    spelled = [code for code in first_try if "q" in code.lower()]
    assert spelled and set(spelled).isdisjoint(links["code"])


def test_a_link_shown_before_the_short_domain_changed_is_still_stored_when_sent(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_members(engine, 6, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    monkeypatch.setenv("TIDINGS_SHORT_DOMAIN", "https://go.brand-example.com")
    get_settings.cache_clear()
    send_campaign(engine, campaign)
    links = link_rows(engine, campaign)
    assert links.height == 6
    shown = links.select(pl.col("text").str.contains(SHORT_DOMAIN + "/s/" + pl.col("code")))
    assert shown.to_series().all()
