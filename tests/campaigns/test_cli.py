"""`tidings campaign ...` and `tidings policy explain`, as an operator types them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from .conftest import add_members, inbox_phones, message_rows, midday_zone

Cli = Any  # the `cli` fixture of tests/conftest.py
PLAN_KEYS = {"audience", "holdout", "planned", "skipped", "segments_total", "cost_cents"}


def run_json(cli: Cli, *args: str) -> dict[str, object]:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_create_plan_review_and_send_reach_each_handset_once(
    cli: Cli, quick_simulator: Path
) -> None:
    add_members(cli.engine, 400, consent_every=4, timezone=midday_zone())
    created = run_json(
        cli, "campaign", "create", "--name", "双十二预热", "--rule", "consent == true",
        "--template", "{surname}，双十二全场满199减50",
        "--variant", "{surname}，双十二会员专享8折", "--weight", "50",
        "--holdout", "0.2", "--rollout", "10,100",
    )  # fmt: skip
    assert set(created) == {"id"}
    campaign = str(created["id"])
    plan = run_json(cli, "campaign", "plan", campaign)
    assert set(plan) == {
        "audience",
        "holdout",
        "planned",
        "skipped",
        "segments_total",
        "cost_cents",
    }
    assert plan["audience"] == 100 and plan["skipped"] == {}
    assert plan["holdout"] + plan["planned"] == 100  # type: ignore[operator]

    review = cli("campaign", "review", campaign)
    assert review.exit_code == 0, review.output
    for expected in ("audience 100", "holdout", "variant", "first messages", "【tidings】"):
        assert expected in review.stdout

    sent = run_json(cli, "campaign", "send", campaign, "--wait", "--timeout", "60")
    assert {"submitted", "delivered", "failed", "expired", "unknown"} <= set(sent)
    assert sent["delivered"] == sent["submitted"] == plan["planned"]
    assert sent["status"] == "completed"

    rows = message_rows(cli.engine, campaign_id=int(campaign))
    phones = inbox_phones(quick_simulator)
    planned = rows.filter(pl.col("skip_reason").is_null())["member_id"].to_list()
    held = rows.filter(pl.col("skip_reason") == "holdout")["member_id"].to_list()
    assert phones == {f"+86139{m:08d}": 1 for m in planned}
    assert not any(f"+86139{m:08d}" in phones for m in held)


def test_review_shows_send_times_in_the_brand_timezone(cli: Cli) -> None:
    add_members(cli.engine, 3, timezone="Asia/Shanghai")
    created = run_json(
        cli, "campaign", "create", "--name", "开学季", "--rule", "consent == true",
        "--template", "{surname}，开学季文具满99减20",
        "--schedule", "2030-06-01T02:30:00+00:00",
    )  # fmt: skip
    campaign = str(created["id"])
    run_json(cli, "campaign", "plan", campaign)
    shown = run_json(cli, "campaign", "review", campaign)["first_messages"]
    assert [m["send_at"] for m in shown] == ["2030-06-01T02:30:00+00:00"] * 3  # type: ignore[index, union-attr]
    review = cli("campaign", "review", campaign)
    assert "first messages (send times in Asia/Shanghai):" in review.stdout
    assert review.stdout.count(" 2030-06-01 10:30 · ") == 3


def test_status_pause_resume_and_cancel_answer_in_json(cli: Cli, quick_simulator: Path) -> None:
    add_members(cli.engine, 20, timezone=midday_zone())
    campaign = str(
        run_json(cli, "campaign", "create", "--name", "到店礼", "--rule", "consent == true",
                 "--template", "{surname}，到店领取新年礼包")["id"]
    )  # fmt: skip
    run_json(cli, "campaign", "plan", campaign)
    assert run_json(cli, "campaign", "send", campaign)["status"] == "running"
    assert run_json(cli, "campaign", "pause", campaign) == {"id": int(campaign), "status": "paused"}
    status = run_json(cli, "campaign", "status", campaign)
    assert status["messages"] == {"queued": 20}
    assert status["status_reason"] == "paused by an operator"
    assert run_json(cli, "campaign", "resume", campaign)["status"] == "running"
    assert run_json(cli, "campaign", "cancel", campaign)["status"] == "cancelled"
    again = cli("campaign", "resume", campaign)
    assert again.exit_code == 2
    assert "is cancelled, not paused" in again.stderr


def test_mistakes_get_a_message_a_person_can_act_on(cli: Cli) -> None:
    bad_rule = cli("campaign", "create", "--name", "x", "--rule", "teir == 'gold'",
                   "--template", "hi")  # fmt: skip
    assert bad_rule.exit_code == 2
    assert "did you mean 'tier'" in bad_rule.stderr
    bad_schedule = cli("campaign", "create", "--name", "x", "--rule", "consent == true",
                       "--template", "hi", "--schedule", "tomorrowish")  # fmt: skip
    assert bad_schedule.exit_code == 2
    assert "schedule 'tomorrowish' is not now, an ISO time" in bad_schedule.stderr
    missing = cli("campaign", "plan", "99")
    assert missing.exit_code == 2
    assert "there is no campaign 99" in missing.stderr


def test_policy_explain_says_why_a_member_gets_nothing(cli: Cli, quick_simulator: Path) -> None:
    add_members(cli.engine, 40, consent_every=2, timezone=midday_zone())
    campaign = str(
        run_json(cli, "campaign", "create", "--name", "会员日", "--rule", "points >= 0",
                 "--template", "{surname}，会员日积分翻倍", "--holdout", "0.3")["id"]
    )  # fmt: skip
    run_json(cli, "campaign", "plan", campaign)
    rows = message_rows(cli.engine, int(campaign))
    no_consent = rows.filter(pl.col("skip_reason") == "no_consent")["member_id"][0]
    held = rows.filter(pl.col("skip_reason") == "holdout")["member_id"][0]
    planned = rows.filter(pl.col("state") == "planned")["member_id"][0]

    answer = run_json(cli, "policy", "explain", str(no_consent), campaign)
    assert answer["explanation"] == (
        "It was not sent: they have not opted in to marketing messages."
    )
    held_answer = cli("policy", "explain", str(held), campaign)
    assert "30% holdout" in held_answer.stdout
    going = cli("policy", "explain", str(planned), campaign)
    assert going.stdout.startswith("It goes at ")
    unknown = cli("policy", "explain", "9999", campaign)
    assert unknown.exit_code == 2 and "there is no member 9999" in unknown.stderr


def test_a_text_the_providers_approved_templates_do_not_fit_is_refused_at_review(
    cli: Cli, monkeypatch: Any
) -> None:
    approved = {"code": "SMS_465912346", "text": "${name}您好，到店领取新年礼包 拒收请回复R"}
    account = {
        "type": "aliyun",
        "access_key_id": "LTAI5tTEST",
        "access_key_secret": "not-a-real-secret",
        "sign_name": "tidings",
        "templates": {"到店礼": approved},
    }
    monkeypatch.setenv("TIDINGS_PROVIDER_ACCOUNTS", json.dumps({"aliyun-main": account}))
    add_members(cli.engine, 10, timezone=midday_zone())

    def planned(template: str) -> str:
        created = run_json(
            cli, "campaign", "create", "--name", "到店礼", "--rule", "consent == true",
            "--template", template, "--provider", "aliyun-main",
        )  # fmt: skip
        run_json(cli, "campaign", "plan", str(created["id"]))
        return str(created["id"])

    unapproved = planned("{surname}，到店领取新年礼包，再送一张券")
    review = run_json(cli, "campaign", "review", unapproved)
    refusals = [f for f in review["findings"] if f["code"] == "template_not_approved"]  # type: ignore[union-attr]
    assert len(refusals) == 1 and "aliyun-main" in refusals[0]["message"]
    refused = cli("campaign", "send", unapproved, "--json")
    assert refused.exit_code != 0
    assert "approved" in refused.output
    assert run_json(cli, "campaign", "status", unapproved)["status"] == "scheduled"

    fitting = planned("{surname}您好，到店领取新年礼包")
    review = run_json(cli, "campaign", "review", fitting)
    assert [f for f in review["findings"] if f["code"] == "template_not_approved"] == []  # type: ignore[union-attr]
    assert run_json(cli, "campaign", "send", fitting)["status"] == "running"
