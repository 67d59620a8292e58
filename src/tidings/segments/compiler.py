"""Compiles a rule's syntax tree into one Polars expression over the audience frame.

The expression is true or false for every member (never null): a comparison with a missing
value is false, except `!=`, `not in` and `not contains`, which are then true. Constants
are folded in Python (yuan to cents, dates to UTC day boundaries) so that the expression
only compares columns with literals.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from tidings.segments.fields import FieldType
from tidings.segments.lexer import RuleError
from tidings.segments.temporal import compare_dates
from tidings.segments.tree import (
    Aggregate,
    And,
    Bool,
    Compare,
    Contains,
    DateValue,
    FieldRef,
    InList,
    InSegment,
    Member,
    Not,
    Null,
    Number,
    Or,
    Rule,
    Text,
    Value,
)
from tidings.segments.typecheck import family, type_of

CENTS_PER_YUAN = 100
_OPERATORS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_PYTHON_OPERATORS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Context:
    """What a rule is evaluated against: the day, the brand's timezone, the saved segments."""

    today: date
    timezone: ZoneInfo
    saved: Mapping[str, Rule]
    within: tuple[str, ...] = field(default=())  # segments being expanded, for cycles


def aggregate_column(*, kind: str, category: str | None, days: int) -> str:
    """Names the frame column that holds one order-history aggregate."""
    return f"{kind}({category!r}, {days}d)"


def compile_rule(rule: Rule, context: Context) -> pl.Expr:
    """Compiles a checked rule into a boolean expression without nulls."""
    match rule:
        case And(items=items):
            return pl.all_horizontal([compile_rule(item, context) for item in items])
        case Or(items=items):
            return pl.any_horizontal([compile_rule(item, context) for item in items])
        case Not(item=item):
            return ~compile_rule(item, context)
        case Compare():
            return _compare(rule, context)
        case InList():
            return _in_list(rule, context)
        case Member(item=item, collection=collection, negated=negated):
            found = pl.col(collection.name).list.contains(_expr(item, context))
            return _settle(~found if negated else found, missing=negated)
        case Contains(left=left, right=right, negated=negated):
            if _is_constant(left) and _is_constant(right):
                return pl.lit((_constant(right) in _constant(left)) != negated)
            found = _expr(left, context).str.contains(_expr(right, context), literal=True)
            return _settle(~found if negated else found, missing=negated)
        case InSegment():
            return _in_segment(rule, context)
    raise TypeError(f"not a rule: {rule!r}")


def _settle(expr: pl.Expr, *, missing: bool) -> pl.Expr:
    """Decides what a missing value means: false for a test, true for its negation."""
    return expr.fill_null(missing)


def _compare(node: Compare, context: Context) -> pl.Expr:
    left, right, op = node.left, node.right, node.op
    if isinstance(right, Null) or isinstance(left, Null):
        other = left if isinstance(right, Null) else right
        if isinstance(other, Null):
            return pl.lit(op == "==")
        missing = _expr(other, context).is_null()
        return missing if op == "==" else ~missing
    if family(left) == "date":
        try:
            return _settle(compare_dates(op, left, right, context), missing=op == "!=")
        except OverflowError:
            raise RuleError("this date arithmetic leaves the calendar", node.pos) from None
    if _is_constant(left) and _is_constant(right):
        return pl.lit(bool(_PYTHON_OPERATORS[op](_constant(left), _constant(right))))
    left_expr, right_expr = _numeric_pair(left, right, context)
    result = getattr(left_expr, _OPERATORS[op])(right_expr)
    return _settle(result, missing=op == "!=")


def _numeric_pair(left: Value, right: Value, context: Context) -> tuple[pl.Expr, pl.Expr]:
    """Puts both sides in the same unit: cents when one side is money and the other a number."""
    money = [type_of(side) == FieldType.MONEY for side in (left, right)]
    exprs = []
    for side, is_money, other_money in ((left, money[0], money[1]), (right, money[1], money[0])):
        if isinstance(side, Number) and other_money:
            exprs.append(pl.lit(yuan_to_cents(side.value)))
        elif is_money and not other_money and not _is_constant(left if side is right else right):
            exprs.append(_expr(side, context) / CENTS_PER_YUAN)
        else:
            exprs.append(_expr(side, context))
    return exprs[0], exprs[1]


def yuan_to_cents(yuan: int | float) -> int | float:
    """Converts an amount written in yuan to cents, exactly when it has at most two decimals."""
    cents = Decimal(repr(yuan)) * CENTS_PER_YUAN
    return int(cents) if cents == cents.to_integral_value() else float(cents)


def _in_list(node: InList, context: Context) -> pl.Expr:
    values = [item for item in node.items if not isinstance(item, Null)]
    has_null = len(values) < len(node.items)
    if _is_constant(node.left):
        matched = any(_constant(node.left) == _constant(item) for item in values)
        return pl.lit(matched != node.negated)
    kind = type_of(node.left)
    if family(node.left) == "date":
        column = _local_day(node.left, context)
        listed: list[Any] = [_constant(item) for item in values]
        found = column.is_in(pl.Series(listed, dtype=pl.Date).implode())
    elif family(node.left) == "number":
        numbers = [
            yuan_to_cents(item.value) if kind == FieldType.MONEY else item.value
            for item in values
            if isinstance(item, Number)
        ]
        exact = all(isinstance(n, int) for n in numbers)
        dtype: pl.DataType = pl.Int64() if exact else pl.Float64()
        found = (
            _expr(node.left, context).cast(dtype).is_in(pl.Series(numbers, dtype=dtype).implode())
        )
    else:
        dtype = pl.Boolean() if kind == FieldType.BOOL else pl.String()
        found = _expr(node.left, context).is_in(
            pl.Series([_constant(i) for i in values], dtype=dtype).implode()
        )
    found = found.fill_null(False)
    if has_null:
        found = found | _expr(node.left, context).is_null()
    return ~found if node.negated else found


def _local_day(value: Value, context: Context) -> pl.Expr:
    expr = _expr(value, context)
    if type_of(value) == FieldType.DATETIME:
        return expr.dt.convert_time_zone(str(context.timezone)).dt.date()
    return expr


def _in_segment(node: InSegment, context: Context) -> pl.Expr:
    if node.name in context.within:
        path = " → ".join([*context.within, node.name])
        raise RuleError(f"segment '{node.name}' refers to itself: {path}", node.pos)
    try:
        rule = context.saved[node.name]
    except KeyError:
        raise RuleError(unknown_segment(node.name, list(context.saved)), node.pos) from None
    except RuleError as error:
        raise RuleError(f"segment '{node.name}' cannot be used: {error}", node.pos) from None
    inner = Context(context.today, context.timezone, context.saved, (*context.within, node.name))
    try:
        return compile_rule(rule, inner)
    except RuleError as error:
        if error.message.startswith(("segment '", "unknown segment")):
            raise RuleError(error.message, node.pos) from None
        raise RuleError(f"segment '{node.name}' cannot be used: {error}", node.pos) from None


def unknown_segment(name: str, known: list[str]) -> str:
    """Says that no segment is saved under `name`, and which one was probably meant."""
    if not known:
        return f"unknown segment '{name}'; no segment is saved yet (tidings segment save NAME RULE)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown segment '{name}'; did you mean '{close[0]}'?"
    shown = ", ".join(sorted(known)[:10])
    return f"unknown segment '{name}'; saved segments: {shown}"


def _is_constant(value: Value) -> bool:
    return isinstance(value, Text | Number | Bool | DateValue)


def _constant(value: Value) -> Any:
    if isinstance(value, Text | Number | Bool | DateValue):
        return value.value
    raise TypeError(f"not a constant: {value!r}")


def _expr(value: Value, context: Context) -> pl.Expr:
    match value:
        case FieldRef(name=name):
            return pl.col(name)
        case Aggregate(kind=kind, category=category, window=window):
            return pl.col(aggregate_column(kind=kind, category=category, days=window.days))
        case Text() | Number() | Bool() | DateValue():
            return pl.lit(value.value)
    raise TypeError(f"cannot compile {value!r} as a column")
