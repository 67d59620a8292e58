"""Type rules of the segment language: which values a comparison, list or test may join.

Each check returns the node it was given, or raises RuleError at the column of the value
that does not fit, with a message that says how to write it.
"""

from __future__ import annotations

from tidings.segments.fields import FIELDS, HOW_TO_WRITE, FieldType
from tidings.segments.lexer import RuleError
from tidings.segments.tree import (
    Aggregate,
    Bool,
    Compare,
    Contains,
    DateValue,
    Duration,
    FieldRef,
    InList,
    Member,
    Null,
    Number,
    Shift,
    Text,
    Today,
    Value,
    value_text,
)

NULL = "null"
DURATION = "duration"
FAMILIES: dict[str, str] = {
    FieldType.TEXT: "text",
    FieldType.INTEGER: "number",
    FieldType.NUMBER: "number",
    FieldType.MONEY: "number",
    FieldType.BOOL: "bool",
    FieldType.DATE: "date",
    FieldType.DATETIME: "date",
    FieldType.LIST: "list",
    NULL: NULL,
    DURATION: DURATION,
}
LITERALS = (Text, Number, Bool, Null, DateValue)
ORDERED = {"text", "number", "date"}


def type_of(value: Value) -> str:
    """Returns the FieldType (or 'null', 'duration') of a value."""
    match value:
        case FieldRef(name=name):
            return FIELDS[name].type
        case Text():
            return FieldType.TEXT
        case Number():
            return FieldType.NUMBER
        case Bool():
            return FieldType.BOOL
        case Null():
            return NULL
        case DateValue() | Today():
            return FieldType.DATE
        case Duration():
            return DURATION
        case Shift(base=base):
            return type_of(base)
        case Aggregate(kind=kind):
            return FieldType.INTEGER if kind == "orders_in" else FieldType.MONEY
    raise TypeError(f"not a value: {value!r}")


def family(value: Value) -> str:
    """Returns the family of a value: text, number, bool, date, list, null or duration."""
    return FAMILIES[type_of(value)]


def check_compare(node: Compare) -> Compare:
    """Checks that both sides of a comparison are alike and the operator suits them."""
    for side in (node.left, node.right):
        _refuse_special(side)
    left, right = family(node.left), family(node.right)
    if NULL in (left, right):
        if node.op not in {"==", "!="}:
            raise RuleError("null means no value; test it with == null or != null", node.pos)
        return node
    if left != right:
        raise RuleError(_mismatch(node.left, node.right), _blame(node.left, node.right).pos)
    if node.op not in {"==", "!="} and left not in ORDERED:
        raise RuleError(
            f"{value_text(node.left)} is true or false; compare it with == or !=", node.pos
        )
    return node


def check_in_list(node: InList) -> InList:
    """Checks a value against a list of literals of its own kind."""
    _refuse_special(node.left)
    for item in node.items:
        if not isinstance(item, LITERALS):
            raise RuleError(
                f'a list holds plain values such as "gold" or 3; {value_text(item)} is not one',
                item.pos,
            )
        if family(item) not in {family(node.left), NULL}:
            raise RuleError(_mismatch(node.left, item), item.pos)
    return node


def check_member(node: Member) -> Member:
    """Checks `"x" in tags`: a text looked up in a list field."""
    kind = FIELDS[node.collection.name].type
    if kind is not FieldType.LIST:
        raise RuleError(
            f"{node.collection.name} is {kind}, not a list; write"
            f' {node.collection.name} in ("a", "b") or {node.collection.name} == "a"',
            node.collection.pos,
        )
    _refuse_special(node.item)
    if family(node.item) != "text":
        raise RuleError(
            f'{node.collection.name} holds texts; look one up with a quoted value, as in "x" in'
            f" {node.collection.name}",
            node.item.pos,
        )
    return node


def check_contains(node: Contains) -> Contains:
    """Checks `name contains "王"`: a substring of a text."""
    if family(node.left) == "list":
        raise RuleError(
            f'{value_text(node.left)} is a list; test one of its values with in, as in "x" in'
            f" {value_text(node.left)}",
            node.left.pos,
        )
    for side in (node.left, node.right):
        if family(side) != "text":
            raise RuleError(
                f"contains looks for a text inside a text; {value_text(side)} is {type_of(side)}",
                side.pos,
            )
    return node


def _refuse_special(value: Value) -> None:
    if isinstance(value, Duration):
        raise RuleError(
            f"{value_text(value)} is a duration; use it with a date,"
            f" as in today - {value_text(value)}",
            value.pos,
        )
    if family(value) == "list":
        raise RuleError(
            f'{value_text(value)} is a list; test one of its values with in, as in "x" in'
            f" {value_text(value)}",
            value.pos,
        )


def _blame(left: Value, right: Value) -> Value:
    """The side to point at: the literal, or else the right-hand side."""
    if isinstance(left, LITERALS) and not isinstance(right, LITERALS):
        return left
    return right


def _mismatch(left: Value, right: Value) -> str:
    subject, other = (right, left) if _blame(left, right) is left else (left, right)
    kind = type_of(subject)
    if isinstance(subject, FieldRef | Aggregate) and not isinstance(other, FieldRef | Aggregate):
        return f"{value_text(subject)} is {kind}; compare it with {HOW_TO_WRITE[FieldType(kind)]}"
    if isinstance(subject, FieldRef | Aggregate):
        return (
            f"{value_text(subject)} is {kind} but {value_text(other)} is {type_of(other)};"
            " compare like with like"
        )
    return f"{value_text(subject)} and {value_text(other)} are different kinds of value"
