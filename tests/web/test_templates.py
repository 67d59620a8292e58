"""The template editor previews the text as a chosen member reads it: framed, measured,
priced, and with each finding highlighted; a template it cannot read says why."""

from __future__ import annotations

import html
import re

from sqlalchemy import Engine

from tidings.accounts.models import Role
from tidings.config import get_settings

from .conftest import Console, add_store_members, csrf_of


def _preview(client, text: str, member: str = ""):  # type: ignore[no-untyped-def]
    token = csrf_of(client, "/templates")
    data = {"csrf_token": token, "text": text, "member": member}
    return client.post("/templates/preview", data=data)


def _shown_text(page: str) -> str:
    body = re.search(r'id="previewed-text"[^>]*>(.*?)</p>', page, re.S)
    assert body is not None
    return html.unescape(re.sub(r"<[^>]+>", "", body.group(1)))


def test_the_preview_is_the_members_framed_message(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    client = console(Role.MARKETER)
    page = _preview(client, "{name}您好，周末全场8折", member="SH001-1").text
    settings = get_settings()
    text = _shown_text(page)
    assert text == f"【{settings.brand_name}】李雷您好，周末全场8折 {settings.opt_out_text}"
    assert re.search(rf'id="characters">{len(text)}<', page)
    assert re.search(r'id="parts">1<', page)
    assert f"¥{settings.price_per_part_cents / 100:,.2f}" in page


def test_an_absolute_term_is_highlighted(console: Console) -> None:
    client = console(Role.MARKETER)
    page = _preview(client, "全城最佳的榴莲，今天到店").text
    assert re.search(r'<mark class="finding" title="[^"]+">最佳</mark>', page)


def test_a_long_text_takes_more_parts(console: Console) -> None:
    client = console(Role.MARKETER)
    page = _preview(client, "会员日" * 40).text
    parts = re.search(r'id="parts">(\d+)<', page)
    assert parts is not None and int(parts.group(1)) >= 2


def test_an_unknown_field_says_where_and_a_stranger_is_not_found(
    console: Console, engine: Engine
) -> None:
    add_store_members(engine)
    client = console(Role.MARKETER)
    page = _preview(client, "{nmae}您好").text
    assert 'id="template-error"' in page and "column 1" in page
    assert "no member &#39;NOPE&#39;" in _preview(client, "您好", member="NOPE").text


def test_only_writers_use_the_editor(console: Console) -> None:
    assert console(Role.ANALYST).get("/templates").status_code == 403
