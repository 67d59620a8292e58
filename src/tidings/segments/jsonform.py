"""The JSON form of a rule's syntax tree, for the console's builder; text and JSON round-trip.

Conditions are objects with an "op": `{"op": "and", "items": [...]}`, `{"op": "not",
"item": {...}}`, `{"op": "==", "left": V, "right": V}` (any comparison), `{"op": "in" | "not
in", "left": V, "items": [V, ...]}` (a list), `{"op": "in" | "not in", "left": V, "right":
{"field": "tags"}}` (a list field), `{"op": "contains" | "not contains", "left": V, "right":
V}`, `{"op": "in_segment", "name": "..."}`.

Values are objects with one key naming their kind: `{"field": "tier"}`, `{"text": "gold"}`,
`{"number": 3}`, `{"bool": true}`, `{"null": true}`, `{"date": "2025-01-31"}`,
`{"today": true}`, `{"duration": "30d"}`, `{"shift": V, "sign": "-", "by": "30d"}`,
`{"aggregate": "orders_in", "category": "水果" or null, "window": "30d"}`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from tidings.segments.fields import FIELDS, suggest_field
from tidings.segments.lexer import RuleError
from tidings.segments.rules import parse
from tidings.segments.tree import (
    AGGREGATES,
    COMPARISONS,
    Aggregate,
    And,
    Bool,
    Compare,
    Contains,
    DateValue,
    Duration,
    FieldRef,
    InList,
    InSegment,
    Member,
    Not,
    Null,
    Number,
    Or,
    Rule,
    Shift,
    Text,
    Today,
    Value,
    to_text,
    value_text,
)

_DURATION = re.compile(r"(\d{1,6})([dw])")


def to_json(rule: Rule) -> dict[str, Any]:
    """Returns the JSON form of a rule."""
    match rule:
        case And(items=items) | Or(items=items):
            return {
                "op": "and" if isinstance(rule, And) else "or",
                "items": [to_json(i) for i in items],
            }
        case Not(item=item):
            return {"op": "not", "item": to_json(item)}
        case Compare(op=op, left=left, right=right):
            return {"op": op, "left": value_json(left), "right": value_json(right)}
        case InList(left=left, items=values, negated=negated):
            listed = [value_json(value) for value in values]
            return {"op": "not in" if negated else "in", "left": value_json(left), "items": listed}
        case Member(item=item, collection=collection, negated=negated):
            op = "not in" if negated else "in"
            return {"op": op, "left": value_json(item), "right": value_json(collection)}
        case Contains(left=left, right=right, negated=negated):
            op = "not contains" if negated else "contains"
            return {"op": op, "left": value_json(left), "right": value_json(right)}
        case InSegment(name=name):
            return {"op": "in_segment", "name": name}
    raise TypeError(f"not a rule: {rule!r}")


def value_json(value: Value) -> dict[str, Any]:
    """Returns the JSON form of a value."""
    match value:
        case FieldRef(name=name):
            return {"field": name}
        case Text(value=text):
            return {"text": text}
        case Number(value=number):
            return {"number": number}
        case Bool(value=flag):
            return {"bool": flag}
        case Null():
            return {"null": True}
        case DateValue(value=day):
            return {"date": day.isoformat()}
        case Today():
            return {"today": True}
        case Duration():
            return {"duration": value_text(value)}
        case Shift(base=base, sign=sign, by=by):
            return {"shift": value_json(base), "sign": sign, "by": value_text(by)}
        case Aggregate(kind=kind, category=category, window=window):
            return {"aggregate": kind, "category": category, "window": value_text(window)}
    raise TypeError(f"not a value: {value!r}")


def from_json(data: object) -> Rule:
    """Builds a checked rule from its JSON form, or raises RuleError saying where it is wrong.

    Type errors carry the column in the rule's canonical text, which the error's `text` holds.
    """
    tree = _rule(data, "tree")
    text = to_text(tree)
    try:
        return parse(text)
    except RuleError as error:
        raise RuleError(error.message, error.position, text) from None


def _rule(data: object, path: str) -> Rule:
    node = _object(data, path)
    op = node.get("op")
    if not isinstance(op, str):
        raise RuleError(f'{path}.op: give the operator as a text, such as "and" or "=="', None)
    if op in {"and", "or"}:
        items = tuple(
            _rule(item, f"{path}.items[{i}]") for i, item in enumerate(_list(node, "items", path))
        )
        if not items:
            raise RuleError(f"{path}: an '{op}' group needs at least one condition", None)
        if len(items) == 1:
            return items[0]
        return And(items) if op == "and" else Or(items)
    if op == "not":
        return Not(_rule(node.get("item"), f"{path}.item"))
    if op == "in_segment":
        return InSegment(_string(node.get("name"), f"{path}.name"))
    if op in COMPARISONS:
        return Compare(
            str(op),
            _value(node.get("left"), f"{path}.left"),
            _value(node.get("right"), f"{path}.right"),
        )
    if op in {"in", "not in"}:
        left = _value(node.get("left"), f"{path}.left")
        if "items" in node:
            values = tuple(
                _value(v, f"{path}.items[{i}]") for i, v in enumerate(_list(node, "items", path))
            )
            return InList(left, values, op == "not in")
        collection = _value(node.get("right"), f"{path}.right")
        if not isinstance(collection, FieldRef):
            raise RuleError(
                f'{path}.right: after in, give a list field such as {{"field": "tags"}}', None
            )
        return Member(left, collection, op == "not in")
    if op in {"contains", "not contains"}:
        return Contains(
            _value(node.get("left"), f"{path}.left"),
            _value(node.get("right"), f"{path}.right"),
            op == "not contains",
        )
    known = ", ".join(
        ["and", "or", "not", *COMPARISONS, "in", "not in", "contains", "not contains", "in_segment"]
    )
    raise RuleError(f"{path}.op: unknown operator {op!r}; use one of {known}", None)


def _value(data: object, path: str) -> Value:
    node = _object(data, path)
    if "field" in node:
        name = _string(node["field"], f"{path}.field")
        if name not in FIELDS:
            close = suggest_field(name)
            hint = (
                f"did you mean '{close}'?" if close else "`tidings segment fields` lists the fields"
            )
            raise RuleError(f"{path}: unknown field '{name}'; {hint}", None)
        return FieldRef(name)
    if "text" in node:
        return Text(_string(node["text"], f"{path}.text"))
    if "number" in node:
        number = node["number"]
        if isinstance(number, bool) or not isinstance(number, int | float) or number != number:
            raise RuleError(f"{path}.number: {number!r} is not a number", None)
        return Number(number)
    if "bool" in node:
        if not isinstance(node["bool"], bool):
            raise RuleError(f"{path}.bool: write true or false", None)
        return Bool(node["bool"])
    if "null" in node:
        return Null()
    if "today" in node:
        return Today()
    if "date" in node:
        try:
            return DateValue(date.fromisoformat(_string(node["date"], f"{path}.date")))
        except ValueError:
            raise RuleError(
                f"{path}.date: {node['date']!r} is not a date such as 2025-01-31", None
            ) from None
    if "duration" in node:
        return _duration(node["duration"], f"{path}.duration")
    if "shift" in node:
        sign = node.get("sign")
        if sign not in ("+", "-"):
            raise RuleError(f"{path}.sign: write '+' or '-'", None)
        return Shift(
            _value(node["shift"], f"{path}.shift"),
            str(sign),
            _duration(node.get("by"), f"{path}.by"),
        )
    if "aggregate" in node:
        kind = node["aggregate"]
        if kind not in AGGREGATES:
            raise RuleError(f"{path}.aggregate: use one of {', '.join(AGGREGATES)}", None)
        category = node.get("category")
        if category is not None:
            category = _string(category, f"{path}.category")
        return Aggregate(str(kind), category, _duration(node.get("window"), f"{path}.window"))
    raise RuleError(
        f"{path}: a value needs one of the keys field, text, number, bool, null, date, today,"
        " duration, shift or aggregate",
        None,
    )


def _duration(data: object, path: str) -> Duration:
    match = _DURATION.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise RuleError(f'{path}: write a duration as "30d" or "12w"', None)
    return Duration(int(match.group(1)), match.group(2))


def _object(data: object, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RuleError(f"{path}: expected an object", None)
    return data


def _list(node: dict[str, Any], key: str, path: str) -> list[Any]:
    items = node.get(key)
    if not isinstance(items, list):
        raise RuleError(f"{path}.{key}: expected a list", None)
    return items


def _string(data: object, path: str) -> str:
    if not isinstance(data, str):
        raise RuleError(f"{path}: expected a text", None)
    return data
