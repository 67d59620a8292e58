"""The console's rule builder: a rule that is a plain list of conditions joined by `and` as
rows of (field, operator, value), and rows back as rule text. The text editor and the
builder stay in step through these two functions; a rule beyond rows is edited as text."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.segments.fields import FIELDS, FieldType
from tidings.segments.rules import parse
from tidings.segments.tree import (
    COMPARISONS,
    And,
    Compare,
    Contains,
    FieldRef,
    Member,
    Rule,
    to_text,
    value_text,
)

HAS = "has"  # a list field holds the value: `"x" in tags`
OPERATORS = (*COMPARISONS, "contains", HAS)
PLAIN_WORD_TYPES = (FieldType.TEXT, FieldType.LIST)


@dataclass(frozen=True)
class BuilderRow:
    """One condition of the builder: `field operator value`, the value written as in rules."""

    field: str
    operator: str
    value: str


def _row(condition: Rule) -> BuilderRow | None:
    match condition:
        case Compare(op=op, left=FieldRef(name=name), right=right):
            return BuilderRow(name, op, value_text(right))
        case Contains(left=FieldRef(name=name), right=right, negated=False):
            return BuilderRow(name, "contains", value_text(right))
        case Member(item=item, collection=FieldRef(name=name), negated=False):
            return BuilderRow(name, HAS, value_text(item))
    return None


def rows_of(rule: Rule) -> list[BuilderRow] | None:
    """The rule as builder rows, or None when it is more than conditions joined by `and`."""
    conditions = rule.items if isinstance(rule, And) else (rule,)
    rows = [_row(condition) for condition in conditions]
    return None if any(row is None for row in rows) else [row for row in rows if row]


def _value(row: BuilderRow) -> str:
    value = row.value.strip()
    field = FIELDS.get(row.field)
    quoted = value[:1] in ('"', "'")
    # A person types 黄金 for a text field; the rule language wants it quoted.
    if field is not None and field.type in PLAIN_WORD_TYPES and value and not quoted:
        return '"' + value.replace('"', "") + '"'
    return value


def text_of(rows: list[BuilderRow]) -> str:
    """The rule text of the rows, checked and in canonical form (raises RuleError)."""
    parts = []
    for row in rows:
        if not row.field.strip():
            continue
        if row.operator == HAS:
            parts.append(f"{_value(row)} in {row.field}")
        else:
            parts.append(f"{row.field} {row.operator} {_value(row)}")
    return to_text(parse(" and ".join(parts))) if parts else ""
