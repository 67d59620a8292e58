"""The segment editor: the builder and the text stay in step, the count and sample follow
the rule, a bad rule says what is wrong, and saved segments show their size."""

from __future__ import annotations

import re

from sqlalchemy import Engine

from tidings.accounts.models import Role

from .conftest import Console, add_store_members, csrf_of


def _preview(client, data: dict[str, object]):  # type: ignore[no-untyped-def]
    token = csrf_of(client, "/segments")
    return client.post("/segments/preview", data={**data, "csrf_token": token})


def test_the_builder_writes_the_rule_text_and_counts_it(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    client = console(Role.MARKETER)
    response = _preview(
        client,
        {"source": "builder", "field": ["tags"], "operator": ["has"], "value": ["榴莲爱好者"]},
    )
    assert response.status_code == 200
    assert re.search(r'id="audience-count">2<', response.text)
    # The text editor comes back (out of band) holding the rule the rows make.
    assert 'id="rule-text"' in response.text and "&#34;榴莲爱好者&#34; in tags" in response.text


def test_the_text_fills_the_builder_and_counts(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    client = console(Role.ANALYST)
    response = _preview(client, {"source": "text", "rule": 'tier == "gold" and points >= 0'})
    assert re.search(r'id="audience-count">4<', response.text)
    assert 'id="builder" hx-swap-oob="true"' in response.text
    assert '<option value="tier" selected>' in response.text
    assert '<option value="points" selected>' in response.text
    # The sample shows members with phones masked for an analyst.
    assert "138****5670" in response.text and "+8613812345670" not in response.text


def test_a_rule_beyond_the_builder_stays_text(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    client = console(Role.MARKETER)
    response = _preview(client, {"source": "text", "rule": 'tier == "gold" or points > 5'})
    assert "只能在规则文本中编辑" in response.text
    assert re.search(r'id="audience-count">4<', response.text)


def test_a_bad_rule_says_what_is_wrong(console: Console, engine: Engine) -> None:
    client = console(Role.MARKETER)
    response = _preview(client, {"source": "text", "rule": "tierr == 'gold'"})
    assert 'id="rule-error"' in response.text and "tier" in response.text


def test_a_saved_segment_is_listed_with_its_size(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    client = console(Role.MARKETER)
    token = csrf_of(client, "/segments")
    saved = client.post(
        "/segments", data={"csrf_token": token, "name": "榴莲客", "rule": '"榴莲爱好者" in tags'}
    )
    assert saved.status_code == 200
    row = re.search(r"<td>榴莲客</td>.*?class=\"size\">([^<]+)<", saved.text, re.S)
    assert row is not None and row.group(1) == "2"


def test_a_bad_rule_is_not_saved(console: Console, engine: Engine) -> None:
    client = console(Role.MARKETER)
    token = csrf_of(client, "/segments")
    response = client.post(
        "/segments", data={"csrf_token": token, "name": "坏规则", "rule": "points >>> 3"}
    )
    assert response.status_code == 422
    assert "<td>坏规则</td>" not in response.text


def test_an_unfinished_builder_row_leaves_the_builder_alone(
    console: Console, engine: Engine
) -> None:
    client = console(Role.MARKETER)
    response = _preview(
        client, {"source": "builder", "field": ["tier"], "operator": ["=="], "value": [""]}
    )
    assert 'id="rule-error"' in response.text and "value is missing" in response.text
    # The rows being edited are not replaced: only the text editor comes back.
    assert 'id="builder"' not in response.text and 'id="rule-text"' in response.text
