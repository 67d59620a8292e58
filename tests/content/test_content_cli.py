"""`tidings message check`: what an operator sees, as text and as JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tidings.cli import app


def check(*args: str):
    return CliRunner().invoke(app, ["message", "check", *args], catch_exceptions=False)


def test_json_has_exactly_the_documented_keys_and_frames_marketing() -> None:
    result = check("--signature", "好邻居", "--json", "新品到店，欢迎光临")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert set(answer) == {"encoding", "units", "segments", "cost_cents", "findings"}
    # 【好邻居】 (5) + body (9) + space + 拒收请回复R (6) = 21 UCS-2 units.
    assert (answer["encoding"], answer["units"], answer["segments"]) == ("UCS-2", 21, 1)
    assert answer["findings"] == []


def test_raw_checks_the_text_as_given_and_exits_1_on_an_error() -> None:
    result = check("--raw", "--json", "Hello [friend]")
    assert result.exit_code == 1
    answer = json.loads(result.output)
    assert (answer["encoding"], answer["units"]) == ("GSM-7", 16)
    found = answer["findings"]
    assert [f["code"] for f in found] == ["missing_signature", "missing_opt_out"]
    assert set(found[0]) == {"code", "severity", "start", "end", "term", "message"}


def test_findings_carry_positions_in_the_checked_text() -> None:
    result = check("--signature", "好邻居", "--json", "最 佳好物，刷单返利")
    assert result.exit_code == 1
    findings = json.loads(result.output)["findings"]
    assert [(f["code"], f["start"], f["end"], f["severity"]) for f in findings] == [
        ("absolute_term", 5, 8, "warning"),
        ("sensitive_word", 11, 15, "error"),
    ]


def test_transactional_mainland_counts_the_signature_and_needs_no_opt_out() -> None:
    result = check(
        "--transactional", "--scheme", "mainland", "--signature", "好邻居", "--json", "中" * 66
    )
    answer = json.loads(result.output)
    assert result.exit_code == 0
    assert (answer["units"], answer["segments"], answer["findings"]) == (71, 2, [])
    assert answer["cost_cents"] > 0


def test_readable_output_shows_the_text_numbers_and_findings() -> None:
    result = check("--signature", "好邻居", "唯一好店")
    assert result.exit_code == 0
    assert "【好邻居】唯一好店 拒收请回复R" in result.output
    assert "UCS-2" in result.output
    assert "absolute_term" in result.output
