"""The service's secret keys: each is its setting when given, or else a random key made once
and kept in a file under var_dir, so that no installation signs with a key everyone knows.

Every process that shares a var_dir reads the same key; processes on other machines must be
given it (`TIDINGS_<NAME>_SECRET`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tidings.config import Settings

KeyName = Literal["console", "short_link", "coupon", "callback", "verification", "preference"]


def key_file(name: KeyName) -> str:
    """The file a key is kept in under var_dir, e.g. `short-link.key`."""
    return f"{name.replace('_', '-')}.key"


def secret(settings: Settings, name: KeyName) -> str:
    """The key `name`: the setting `<name>_secret`, or the one kept under var_dir."""
    given: str | None = getattr(settings, f"{name}_secret")
    if given:
        return given
    return _kept(Path(settings.var_dir).resolve() / key_file(name))


@cache
def _kept(path: Path) -> str:
    """The key in `path`, made first if there is none (a key file never changes once made)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        # A hard link appears whole or not at all: of two processes making the key at
        # once, the first one's stands and both read it.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()
