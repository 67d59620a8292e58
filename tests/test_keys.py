"""Secret keys: an installation that sets none signs with random keys of its own, kept under
var_dir, never with a key written in the code that anyone could read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from tidings import clock, keys
from tidings.config import Settings
from tidings.notifications import preference_tokens, preferences

NAMES = get_args(keys.KeyName)


@pytest.mark.parametrize("name", NAMES)
def test_without_a_setting_one_random_key_is_made_and_kept(tmp_path: Path, name: str) -> None:
    first = Settings(var_dir=tmp_path / "a", **{f"{name}_secret": None})
    key = keys.secret(first, name)  # type: ignore[arg-type]
    assert len(key) == 64 and key == keys.secret(first, name)  # type: ignore[arg-type]
    kept = tmp_path / "a" / keys.key_file(name)  # type: ignore[arg-type]
    assert kept.read_text() == key and kept.stat().st_mode & 0o077 == 0
    other = Settings(var_dir=tmp_path / "b", **{f"{name}_secret": None})
    assert keys.secret(other, name) != key  # type: ignore[arg-type]
    given = Settings(var_dir=tmp_path / "a", **{f"{name}_secret": "given"})
    assert keys.secret(given, name) == "given"  # type: ignore[arg-type]


def test_each_purpose_has_its_own_key(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, **{f"{name}_secret": None for name in NAMES})
    assert len({keys.secret(settings, name) for name in NAMES}) == len(NAMES)


def test_processes_sharing_a_var_dir_read_one_key(tmp_path: Path) -> None:
    script = (
        "import sys; from tidings import keys; from tidings.config import Settings; "
        "print(keys.secret(Settings(var_dir=sys.argv[1], coupon_secret=None), 'coupon'))"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    read = {run.communicate()[0].strip() for run in runs}
    assert read == {(tmp_path / "coupon.key").read_text().encode()}


def test_a_link_signed_with_a_guessable_key_opens_no_page(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, preference_secret=None)
    forged = preference_tokens.token_for(
        7, secret="change-me", day=preference_tokens.day_number(clock.now())
    )
    with pytest.raises(preferences.PreferenceError, match="not valid"):
        preferences.member_of(forged, settings)
    own = preferences.preference_link(7, settings).rsplit("/", 1)[1]
    assert preferences.member_of(own, settings) == 7
