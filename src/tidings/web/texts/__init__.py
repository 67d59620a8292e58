"""Every text the console shows, in one catalogue per language: Chinese by default, English
on the switch. A page asks for a text by its key (`t("nav_members")`); the catalogues hold
the same keys, which a test checks."""

from __future__ import annotations

from tidings.web.texts.en import EN
from tidings.web.texts.zh import ZH

DEFAULT_LANGUAGE = "zh"
TEXTS: dict[str, dict[str, str]] = {"zh": ZH, "en": EN}

__all__ = ["DEFAULT_LANGUAGE", "EN", "TEXTS", "ZH"]
