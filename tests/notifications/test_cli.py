"""`tidings notify`: a notice sent from the shell goes once per key and shows its state."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from .conftest import PHONE


def test_send_twice_show_and_link(engine: Engine, cli, member: int) -> None:  # type: ignore[no-untyped-def]
    args = ["notify", "send", "--key", "visit-9", "--member", str(member)]
    args += ["--template", "{surname}，您预约的{service}明天10点开始。", "--value", "service=验光"]
    first = cli(*args, "--json")
    assert first.exit_code == 0, first.output
    answer = json.loads(first.output)
    again = cli(*args)
    assert again.output.startswith(f"message {answer['id']}: queued")
    assert "used before" in again.output

    shown = json.loads(cli("notify", "show", str(answer["id"]), "--json").output)
    assert shown["text"].endswith("陈女士，您预约的验光明天10点开始。")
    assert shown["phone"] == PHONE

    bad = cli("notify", "send", "--key", "x", "--member", str(member), "--value", "oops")
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    assert "/p/" in cli("notify", "link", str(member)).output
