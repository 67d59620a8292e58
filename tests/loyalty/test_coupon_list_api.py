"""GET /api/v1/coupons lists a member's or a campaign's coupons, or those in one state, a page
at a time; the single-coupon look-up stays at /coupons/{code}."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tidings import clock
from tidings.app import create_app
from tidings.db import session_scope
from tidings.loyalty import coupons
from tidings.loyalty.coupons import CouponTerms
from tidings.loyalty.models import CouponStatus
from tidings.members.models import Member


def test_coupons_are_listed_by_member_and_state(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    members = [{"member_code": f"Q{i}", "phone": f"1390013900{i}"} for i in range(2)]
    assert client.post("/api/v1/members:batch", json={"members": members}).status_code == 200
    with session_scope(engine) as db_session:
        first, second = db_session.scalars(select(Member.id).order_by(Member.code)).all()
        terms = CouponTerms(value_cents=1000, valid_days=7)
        issued = [
            coupons.issue(
                db_session=db_session, member_id=owner, source="points", terms=terms,
                now=clock.now(),
            ).code
            for owner in (first, first, first, second)
        ]  # fmt: skip
        voided = coupons.get(db_session=db_session, code=issued[0])
        voided.status = CouponStatus.VOID

    page = client.get("/api/v1/coupons", params={"member_id": first, "per_page": 2}).json()
    assert [c["code"] for c in page["items"]] == [issued[2], issued[1]]
    rest = client.get(page["next"]).json()
    assert [c["code"] for c in rest["items"]] == [issued[0]] and rest["next"] is None
    void = client.get("/api/v1/coupons", params={"status": "void"}).json()["items"]
    assert [(c["code"], c["value_cents"]) for c in void] == [(issued[0], 1000)]
    wrong = client.get("/api/v1/coupons", params={"status": "used"})
    assert wrong.status_code == 422 and "status" in wrong.json()["detail"]
