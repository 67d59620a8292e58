"""Order-history aggregates a rule asks for (`orders_in`, `spend_in`), joined to the audience.

Only the (category, window) pairs a rule uses are computed, each with one group_by over the
order lines of that window, so a rule without aggregates never touches order history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from tidings.segments.compiler import aggregate_column
from tidings.segments.lexer import RuleError
from tidings.segments.temporal import day_start
from tidings.segments.tree import (
    Aggregate,
    And,
    Compare,
    Contains,
    InList,
    InSegment,
    Member,
    Not,
    Or,
    Rule,
    Shift,
    Value,
)

ORDER_LINE_COLUMNS = ("member_id", "order_id", "ordered_at", "amount_cents", "category")

Window = tuple[str | None, int]  # (category or None for every category, days)


def aggregates_used(rule: Rule, saved: Mapping[str, Rule]) -> list[tuple[Window, Aggregate]]:
    """Lists the aggregates a rule uses, with those of the saved segments it refers to."""
    found: dict[Window, Aggregate] = {}
    _walk(rule, saved, found, seen=set())
    return sorted(found.items(), key=lambda item: (item[0][0] or "", item[0][1]))


def _walk(
    rule: Rule, saved: Mapping[str, Rule], found: dict[Window, Aggregate], seen: set[str]
) -> None:
    match rule:
        case And(items=items) | Or(items=items):
            for item in items:
                _walk(item, saved, found, seen)
        case Not(item=item):
            _walk(item, saved, found, seen)
        case Compare(left=left, right=right) | Contains(left=left, right=right):
            _values([left, right], found)
        case InList(left=left, items=items):
            _values([left, *items], found)
        case Member(item=item):
            _values([item], found)
        case InSegment(name=name):
            if name in seen:
                return
            seen.add(name)
            try:
                inner = saved.get(name)
            except RuleError:
                return  # compiling reports the broken segment at its reference
            if inner is not None:
                _walk(inner, saved, found, seen)


def _values(values: list[Value], found: dict[Window, Aggregate]) -> None:
    for value in values:
        while isinstance(value, Shift):
            value = value.base
        if isinstance(value, Aggregate):
            found.setdefault((value.category, value.window.days), value)


def with_aggregates(
    audience: pl.DataFrame,
    order_lines: pl.DataFrame,
    windows: list[Window],
    *,
    today: date,
    timezone: ZoneInfo,
) -> pl.DataFrame:
    """Adds one orders and one spend column per (category, window) to the audience frame.

    A window of N days holds the orders placed on `today` and the N-1 days before it, by
    the brand's local calendar.
    """
    frame = audience
    end = day_start(today + timedelta(days=1), timezone)
    for category, days in windows:
        start = day_start(today - timedelta(days=days - 1), timezone)
        lines = order_lines.lazy().filter(
            (pl.col("ordered_at") >= start) & (pl.col("ordered_at") < end)
        )
        if category is not None:
            lines = lines.filter(pl.col("category") == category)
        orders = aggregate_column(kind="orders_in", category=category, days=days)
        spend = aggregate_column(kind="spend_in", category=category, days=days)
        totals = lines.group_by(pl.col("member_id").cast(pl.Int64)).agg(
            pl.col("order_id").n_unique().cast(pl.Int64).alias(orders),
            pl.col("amount_cents").sum().cast(pl.Int64).alias(spend),
        )
        frame = (
            frame.lazy()
            .join(totals, on="member_id", how="left")
            .with_columns(pl.col(orders).fill_null(0), pl.col(spend).fill_null(0))
            .collect()
        )
    return frame
