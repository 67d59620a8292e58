"""The console's texts: both catalogues hold the same keys, and every key a template asks
for exists."""

from __future__ import annotations

import re

from tidings.web.rendering import WEB_DIR
from tidings.web.texts import EN, ZH

ASKED = re.compile(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*\)""")


def test_both_languages_have_the_same_texts() -> None:
    assert (sorted(set(ZH) - set(EN)), sorted(set(EN) - set(ZH))) == ([], [])


def test_every_text_a_template_asks_for_exists() -> None:
    asked = {
        key
        for template in WEB_DIR.rglob("*.html")
        for key in ASKED.findall(template.read_text(encoding="utf-8"))
    }
    assert asked, "the templates ask for no text at all"
    assert sorted(asked - set(ZH)) == []
