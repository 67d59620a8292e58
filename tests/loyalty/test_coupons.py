"""A till redeems coupons through the API: once per coupon, the same answer for the same
order, and a clear refusal (that changes nothing) for every other case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope
from tidings.loyalty import coupons
from tidings.loyalty.codes import ALPHABET
from tidings.loyalty.coupons import CouponTerms
from tidings.loyalty.models import Coupon, CouponKind, CouponStatus
from tidings.members.models import Member

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


def _setup(engine: Engine) -> tuple[TestClient, dict[str, str], int]:
    """Two members and coupons in every state; returns a client, the codes and a member id."""
    with session_scope(engine) as session:
        owner = Member(code="M1", phone="+8613800138001", points=0)
        other = Member(code="M2", phone="+8613800138002", points=0)
        session.add_all([owner, other])
        session.flush()
        ten_off = CouponTerms(value_cents=1000, min_spend_cents=5000, valid_days=7)

        def issue(terms: CouponTerms, start: datetime) -> str:
            return coupons.issue(
                db_session=session, member_id=owner.id, source="campaign", terms=terms, now=start
            ).code

        codes = {
            "ten_off": issue(ten_off, NOW - timedelta(days=1)),
            "percent": issue(
                CouponTerms(kind=CouponKind.DISCOUNT, discount_percent=20), NOW - timedelta(days=1)
            ),
            "expired": issue(ten_off, NOW - timedelta(days=8)),
            "later": issue(ten_off, NOW + timedelta(days=1)),
        }
        _, key = accounts.create(db_session=session, name="till")
        owner_id = owner.id
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    return client, codes, owner_id


def _redeem(client: TestClient, code: str, **body: Any) -> Any:
    with clock.frozen(NOW):
        return client.post(f"/api/v1/coupons/{code}/redeem", json=body)


def _state(engine: Engine, code: str) -> tuple[Any, ...]:
    with engine.connect() as connection:
        row = connection.execute(
            select(Coupon.status, Coupon.redeemed_order_ref, Coupon.redeemed_amount_cents).where(
                Coupon.code == code
            )
        ).one()
    return tuple(row)


def test_a_coupon_is_redeemed_once_and_the_same_order_gets_the_same_answer(engine: Engine):
    client, codes, owner = _setup(engine)
    code = codes["ten_off"]
    first = _redeem(client, code.lower(), order_id="POS-1", amount_cents=8800, member_id=owner)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["discount_cents"]) == ("redeemed", 1000)
    again = _redeem(client, code, order_id="POS-1", amount_cents=8800)
    assert (again.status_code, again.json()) == (200, first.json())
    other_order = _redeem(client, code, order_id="POS-2", amount_cents=9900)
    assert other_order.status_code == 409
    assert other_order.headers["content-type"] == "application/problem+json"
    assert other_order.json()["reason"] == "already_used"
    assert "already used on order POS-1" in other_order.json()["detail"]
    assert _state(engine, code) == (CouponStatus.REDEEMED, "POS-1", 8800)
    shown = client.get(f"/api/v1/coupons/{code}").json()
    assert (shown["order_id"], shown["amount_cents"], shown["value_cents"]) == ("POS-1", 8800, 1000)
    percent = _redeem(client, codes["percent"], order_id="POS-3", amount_cents=12345)
    assert percent.json()["discount_cents"] == 2469


@pytest.mark.parametrize(
    ("which", "body", "status", "reason", "words"),
    [
        ("expired", {}, 409, "expired", "expired at"),
        ("later", {}, 409, "not_yet_valid", "is valid from"),
        ("ten_off", {"amount_cents": 4999}, 422, "below_min_spend", "0.01 short"),
        ("ten_off", {"phone": "13800138002"}, 409, "other_member", "belongs to another member"),
    ],
)
def test_a_coupon_that_cannot_be_used_is_refused_with_its_reason(
    engine: Engine, which: str, body: dict[str, Any], status: int, reason: str, words: str
) -> None:
    client, codes, _owner = _setup(engine)
    answer = _redeem(client, codes[which], **{"order_id": "POS-9", "amount_cents": 8800, **body})
    assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    assert words in answer.json()["detail"]
    assert _state(engine, codes[which]) == (CouponStatus.ISSUED, None, None)


def test_unknown_and_mistyped_codes_are_told_apart(engine: Engine) -> None:
    client, codes, _owner = _setup(engine)
    code = codes["ten_off"]
    wrong = ALPHABET[(ALPHABET.index(code[3]) + 1) % len(ALPHABET)]
    typo = code[:3] + wrong + code[4:]
    mistyped = _redeem(client, typo, order_id="POS-1", amount_cents=8800)
    assert (mistyped.status_code, mistyped.json()["reason"]) == (422, "mistyped")
    assert "looks mistyped" in mistyped.json()["detail"]
    unknown = client.get("/api/v1/coupons/22222222222")  # check character fits, never issued
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown")
    bad_body = _redeem(client, code, order_id="", amount_cents=-5)
    assert bad_body.status_code == 422
    assert _state(engine, code) == (CouponStatus.ISSUED, None, None)
    assert TestClient(create_app(engine)).get(f"/api/v1/coupons/{code}").status_code == 401


def test_the_till_redeems_from_the_cli_too(engine: Engine, cli: Any) -> None:
    _client, codes, _owner = _setup(engine)
    with clock.frozen(NOW):
        done = cli("coupon", "redeem", codes["ten_off"], "--order", "T-7", "--amount", "88.00")
        again = cli("coupon", "redeem", codes["ten_off"], "--order", "T-8", "--amount", "88")
        shown = cli("coupon", "show", codes["ten_off"])
    assert done.exit_code == 0 and "(10.00 yuan off)" in done.output
    assert again.exit_code == 1 and "already used on order T-7" in again.output
    assert "redeemed on order T-7 of 88.00 yuan" in shown.output
