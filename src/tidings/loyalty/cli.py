"""`tidings points show|expire|accrue|redeem` and `tidings coupon show|redeem`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.loyalty import coupons, service
from tidings.members.models import Member
from tidings.members.service import find_member
from tidings.migrate import ready_engine

points_app = typer.Typer(help="Members' points: balance, expiry, redemption.", no_args_is_help=True)
coupon_app = typer.Typer(help="Coupons: look one up, redeem one at the till.", no_args_is_help=True)
JSON_HELP = "Print the result as JSON."
MEMBER_HELP = "The member: phone, member code or id."
CODE_HELP = "The coupon's code, as printed (any case, spaces and dashes ignored)."
T = TypeVar("T")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _session() -> Iterator[Session]:
    with session_scope(ready_engine()) as session:
        yield session


def _run(action: Callable[[Session], T]) -> T:
    try:
        with _session() as session:
            return action(session)
    except (service.RedemptionRefused, coupons.CouponRefused) as error:
        _fail(str(error))


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _member_id(session: Session, key: str) -> int:
    member = find_member(db_session=session, key=key, region=get_settings().default_region)
    if member is None and key.isdigit():
        member = session.get(Member, int(key))
    if member is None:
        _fail(f"no member '{key}' (give a phone, a member code or an id)")
    return member.id


def _yuan(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


@points_app.command("show")
def show(
    member: str = typer.Argument(..., help=MEMBER_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a member's balance, the points expiring soon and every ledger entry."""
    view = _run(
        lambda s: service.statement(db_session=s, member_id=_member_id(s, member), now=clock.now())
    )
    if as_json:
        _print_json(view)
        return
    first = f", first on {view['expiry_date']}" if view["expiry_date"] else ""
    typer.echo(
        f"member {view['member_id']}: {view['balance']:,} points"
        f" ({view['available']:,} not expired); {view['expiring']:,} expire within"
        f" {view['expiring_days']} days{first}"
    )
    for entry in view["entries"]:
        expires = entry["expires_at"]
        typer.echo(
            f"  {entry['occurred_at']:%Y-%m-%d}  {entry['kind']:<10} {entry['points']:>+8,}"
            f"  left {entry['remaining']:>6,}"
            + (f"  expires {expires:%Y-%m-%d}" if expires else "")
            + (f"  ({entry['note']})" if entry["note"] else "")
        )


@points_app.command("expire")
def expire(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Writes off what is left of lots past their date (the worker also runs it daily)."""
    result = _run(lambda s: service.expire(db_session=s, now=clock.now()))
    if as_json:
        _print_json(result)
        return
    typer.echo(
        f"expired {result['points']:,} points of {result['lots']:,} lots"
        f" from {result['members']:,} members"
    )


@points_app.command("accrue")
def accrue(
    since: datetime = typer.Option(
        None,
        "--since",
        formats=["%Y-%m-%d"],
        help="Only orders placed on or after this date (YYYY-MM-DD, the brand's timezone).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Credits every order that has no points yet (after an import stopped partway)."""
    start = None
    if since is not None:
        start = since.replace(tzinfo=ZoneInfo(get_settings().default_timezone))
    result = _run(lambda s: service.accrue_orders(db_session=s, now=clock.now(), since=start))
    if as_json:
        _print_json(result)
        return
    typer.echo(f"credited {result['points']:,} points to {result['orders']:,} orders")


@points_app.command("redeem")
def redeem(
    member: str = typer.Argument(..., help=MEMBER_HELP),
    points: int = typer.Option(
        None, "--points", help="Points to spend (default: one unit, TIDINGS_POINTS_PER_REDEMPTION)."
    ),
    gift: str = typer.Option(None, "--gift", help="Take a gift of TIDINGS_POINTS_GIFTS instead."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Spends points (those expiring first first) on a coupon, or on a gift voucher."""
    if points is not None and gift is not None:
        _fail("give --points for a coupon or --gift for a gift, not both")

    def action(session: Session) -> service.Redemption:
        member_id = _member_id(session, member)
        return service.redeem(
            db_session=session, member_id=member_id, now=clock.now(), wanted=points, gift=gift
        )

    done = _run(action)
    if as_json:
        _print_json(done.__dict__)
        return
    what = f"gift {done.gift}" if done.gift else f"a {_yuan(done.value_cents)} yuan coupon"
    typer.echo(
        f"member {done.member_id} spent {done.points:,} points on {what}: code"
        f" {done.coupon_code}, valid until {done.valid_until:%Y-%m-%d}; {done.balance:,} left"
    )


def _print_coupon(view: dict[str, Any]) -> None:
    worth = (
        f"{view['discount_percent']}% off"
        if view["kind"] == "discount"
        else f"{_yuan(view['value_cents'])} yuan off"
    )
    typer.echo(
        f"coupon {view['code']}: {view['status']}, {worth}"
        + (f" (gift {view['gift']})" if view["gift"] else "")
        + f", minimum spend {_yuan(view['min_spend_cents'])} yuan,"
        f" valid {view['valid_from']:%Y-%m-%d} to "
        + (f"{view['valid_until']:%Y-%m-%d}" if view["valid_until"] else "no end")
        + f"; member {view['member_id'] or 'anyone'}, from {view['source']}"
    )
    if view["order_id"]:
        typer.echo(
            f"redeemed on order {view['order_id']} of {_yuan(view['amount_cents'])} yuan"
            f" ({_yuan(view['discount_cents'])} yuan off) at {view['redeemed_at']:%Y-%m-%d %H:%M}"
        )


@coupon_app.command("show")
def coupon_show(
    code: str = typer.Argument(..., help=CODE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a coupon: its worth, validity, owner and redemption."""
    view = _run(
        lambda s: coupons.describe(db_session=s, coupon=coupons.get(db_session=s, code=code))
    )
    _print_json(view) if as_json else _print_coupon(view)


def _cents(amount: str) -> int:
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        _fail(f"amount '{amount}' is not an amount in yuan (like 88.00)")
    if value < 0 or value != value.quantize(Decimal("0.01")):
        _fail(f"amount '{amount}' must be yuan with at most two decimals, like 88.00")
    return int(value * 100)


@coupon_app.command("redeem")
def coupon_redeem(
    code: str = typer.Argument(..., help=CODE_HELP),
    order: str = typer.Option(..., "--order", help="The till's own id of the order."),
    amount: str = typer.Option(..., "--amount", help="The order's amount in yuan, e.g. 88.00."),
    member: str = typer.Option(None, "--member", help="The member at the till (phone or code)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Redeems a coupon on an order; the same order again gives the same answer."""
    cents = _cents(amount)

    def action(session: Session) -> dict[str, Any]:
        member_id = None if member is None else _member_id(session, member)
        coupon = coupons.redeem(
            db_session=session,
            code=code,
            order_ref=order,
            amount_cents=cents,
            member_id=member_id,
            now=clock.now(),
        )
        return coupons.describe(db_session=session, coupon=coupon)

    view = _run(action)
    _print_json(view) if as_json else _print_coupon(view)
