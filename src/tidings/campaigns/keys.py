"""The dedupe key of a campaign's message to a member, which makes planning twice send once.

`campaign:<id>:member:<member id>`, with `step:<n>:` before `member` for a campaign's later
steps. Short links carry the key of the message that shows them, to find it again; every
writer makes keys here, as Polars expressions or as SQL.
"""

from __future__ import annotations

import polars as pl


def key_prefix(campaign_id: int, step: int = 0) -> str:
    """What the keys of a campaign's (or one of its steps') messages start with."""
    return f"campaign:{int(campaign_id)}:" + (f"step:{int(step)}:" if step else "") + "member:"


def message_key(campaign_id: int, member_id: str, step: int = 0) -> pl.Expr:
    """The key of the message to the member of each row (`member_id`, a column's name)."""
    return pl.lit(key_prefix(campaign_id, step)) + pl.col(member_id).cast(pl.String)


def message_key_sql(prefix: str, member_sql: str) -> str:
    """The key of the message to the member `member_sql` (an integer SQL expression) as
    SQL, after `prefix` (`key_prefix`)."""
    return f"'{prefix}' || {member_sql}"
