"""The members pages: search, a member's page, masking for analysts, one store for store
managers, and the audited export and erasure."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from tidings.accounts.models import Role
from tidings.audit.models import AuditEvent
from tidings.campaigns.sources import phone_hash
from tidings.db import session_scope
from tidings.members.models import Member, Suppression

from .conftest import Console, add_store_members, csrf_of

SH_PHONE = "+8613812345670"  # SH001's first member, as add_store_members makes it
SH_MASKED = "138****5670"


def _audited(engine: Engine, action: str) -> list[str | None]:
    with session_scope(engine) as db_session:
        query = select(AuditEvent.subject).where(AuditEvent.action == action)
        return list(db_session.scalars(query))


def test_search_finds_members_by_phone_code_name_and_tag(console: Console, engine: Engine) -> None:
    ids = add_store_members(engine)
    client = console(Role.MARKETER)
    by_phone = client.get("/members", params={"q": "138 1234 5670"}).text
    assert f'/members/{ids["SH001"][0]}"' in by_phone
    assert f'/members/{ids["SH001"][1]}"' not in by_phone
    by_code = client.get("/members", params={"q": "BJ002-1"}).text
    assert f'/members/{ids["BJ002"][1]}"' in by_code
    assert f'/members/{ids["BJ002"][0]}"' not in by_code
    by_surname = client.get("/members", params={"q": "王"}).text
    assert f'/members/{ids["SH001"][0]}"' in by_surname
    assert f'/members/{ids["BJ002"][0]}"' in by_surname
    assert f'/members/{ids["SH001"][1]}"' not in by_surname
    by_name = client.get("/members", params={"q": "王芳"}).text
    assert f'/members/{ids["BJ002"][0]}"' not in by_name
    by_tag = client.get("/members", params={"q": "#榴莲爱好者"}).text
    tagged = {ids["SH001"][1], ids["BJ002"][1]}
    assert all(f'/members/{i}"' in by_tag for i in tagged)
    assert f'/members/{ids["SH001"][0]}"' not in by_tag


def test_an_analyst_sees_masked_phones_everywhere(console: Console, engine: Engine) -> None:
    ids = add_store_members(engine)
    client = console(Role.ANALYST)
    listing = client.get("/members").text
    page = client.get(f"/members/{ids['SH001'][0]}").text
    for html in (listing, page):
        assert SH_MASKED in html and SH_PHONE not in html and "13812345670" not in html
    assert client.get(f"/members/{ids['SH001'][0]}/export").status_code == 403


def test_a_store_manager_sees_only_their_store(console: Console, engine: Engine) -> None:
    ids = add_store_members(engine)
    client = console(Role.STORE_MANAGER, "SH001")
    listing = client.get("/members").text
    assert all(f'/members/{i}"' in listing for i in ids["SH001"])
    assert not any(f'/members/{i}"' in listing for i in ids["BJ002"])
    assert client.get(f"/members/{ids['BJ002'][0]}").status_code == 404
    assert client.get("/members", params={"q": "BJ002-0"}).text.count("/members/") == 0


def test_an_export_holds_the_members_data_and_is_audited(console: Console, engine: Engine) -> None:
    ids = add_store_members(engine)
    client = console(Role.MARKETER)
    member_id = ids["SH001"][0]
    response = client.get(f"/members/{member_id}/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["member"]["phone"] == SH_PHONE and data["member"]["store_code"] == "SH001"
    assert _audited(engine, "member.export") == [f"member:{member_id}"]


def test_erasure_keeps_the_phone_only_as_a_suppression_hash(
    console: Console, engine: Engine
) -> None:
    ids = add_store_members(engine)
    client = console(Role.ADMIN)
    member_id = ids["SH001"][0]
    token = csrf_of(client, f"/members/{member_id}")
    response = client.post(f"/members/{member_id}/erase", data={"csrf_token": token})
    assert response.status_code == 200 and "个人数据已删除" in response.text
    with session_scope(engine) as db_session:
        member = db_session.get(Member, member_id)
        assert member is not None
        assert (member.phone, member.name, member.code, member.erased_at is not None) == (
            None,
            None,
            None,
            True,
        )
        hashes = set(db_session.scalars(select(Suppression.phone_hash)))
    assert phone_hash(SH_PHONE) in hashes
    assert _audited(engine, "member.erase") == [f"member:{member_id}"]
    assert f'/members/{member_id}"' not in client.get("/members").text


def test_only_an_admin_erases_and_never_without_the_form_token(
    console: Console, engine: Engine
) -> None:
    ids = add_store_members(engine)
    member_id = ids["SH001"][0]
    marketer = console(Role.MARKETER)
    token = csrf_of(marketer, f"/members/{member_id}")
    assert (
        marketer.post(f"/members/{member_id}/erase", data={"csrf_token": token}).status_code == 403
    )
    admin = console(Role.ADMIN)
    assert admin.post(f"/members/{member_id}/erase", data={}).status_code == 403
    with session_scope(engine) as db_session:
        member = db_session.get(Member, member_id)
        assert member is not None and member.phone == SH_PHONE
    assert _audited(engine, "member.erase") == []
