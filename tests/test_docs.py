"""The documentation is complete: every command, option and setting is in docs/, and docs/
names nothing that no longer exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typer.main import get_command

from tidings.cli import app
from tidings.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "list_commands"):  # a group: its commands load when asked for
        for name in command.list_commands(None):
            yield from _commands(command.get_command(None, name), (*path, name))
    else:
        yield " ".join(path), command


def _sections(text: str) -> dict[str, str]:
    """The body under each `### heading`."""
    parts = re.split(r"^### (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_command_and_option_is_documented() -> None:
    sections = _sections((DOCS / "cli.md").read_text(encoding="utf-8"))
    commands = dict(_commands(get_command(app), ("tidings",)))
    missing = sorted(set(commands) - set(sections))
    stale = sorted(set(sections) - set(commands))
    assert (missing, stale) == ([], [])
    undocumented = [
        f"{path} {option}"
        for path, command in commands.items()
        for parameter in command.params
        if parameter.param_type_name == "option"
        for option in parameter.opts[:1]
        if option not in sections[path]
    ]
    assert undocumented == []


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(TIDINGS_[A-Z0-9_]+)`", text))
    settings = {f"TIDINGS_{name.upper()}" for name in Settings.model_fields}
    assert (sorted(settings - documented), sorted(documented - settings)) == ([], [])
