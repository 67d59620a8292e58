"""The scopes an API key may carry: each /api/v1 endpoint names one, and a key holds a list.

A key holding "*" may do everything; "members:*" grants every scope of the members area."""

from __future__ import annotations

ALL = "*"

SCOPES: dict[str, str] = {
    "members:read": "search, list and read members, their timeline, recommendation and export",
    "members:write": "upsert members in batches and erase a member",
    "orders:write": "send orders and stock levels in batches",
    "events:write": "send shopping, weather and location events",
    "segments:read": "list segments and fields, count and sample an audience",
    "segments:write": "create, change and delete saved segments",
    "templates:read": "preview a message for a member and check its content",
    "campaigns:read": "list campaigns, their status, review and explanations",
    "campaigns:write": "create, plan, send, pause, resume and cancel campaigns",
    "triggers:read": "list triggers and their firings",
    "triggers:write": "create triggers and switch them on or off",
    "tickets:read": "list and read tickets",
    "tickets:write": "answer, assign and solve tickets",
    "messages:write": "send transactional messages and check verification codes",
    "messages:read": "read a transactional message's state",
    "coupons:read": "look up a coupon",
    "coupons:redeem": "redeem a coupon at the till",
    "reports:read": "read campaign reports, charts and sending health",
}


class UnknownScope(ValueError):
    """A scope that no endpoint uses was asked for."""


def check_scopes(scopes: list[str]) -> list[str]:
    """Returns `scopes` if each is known (or an area's wildcard); raises UnknownScope otherwise."""
    areas = {name.split(":")[0] for name in SCOPES}
    for scope in scopes:
        area, _, action = scope.partition(":")
        if scope == ALL or scope in SCOPES or (action == "*" and area in areas):
            continue
        raise UnknownScope(
            f"unknown scope '{scope}'; use one of: {', '.join(SCOPES)}, an area's wildcard"
            " such as 'members:*', or '*' for all"
        )
    return scopes


def grants(held: list[str], scope: str) -> bool:
    """Whether a key holding `held` may use an endpoint that needs `scope`."""
    area = scope.split(":")[0]
    return ALL in held or scope in held or f"{area}:*" in held
