"""The syntax tree of a segment rule, its canonical text and its JSON form.

Nodes keep the column where they were written (`pos`, 1-based) for error messages; the
column takes no part in equality, so a tree printed and parsed again equals the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

# Operators in the order the printer and the JSON form accept them.
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
AGGREGATES = ("orders_in", "spend_in")
DAYS_PER_UNIT = {"d": 1, "w": 7}


def _pos() -> int:
    return field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class FieldRef:
    """A field of the audience, by name (`tier`)."""

    name: str
    pos: int = _pos()


@dataclass(frozen=True)
class Text:
    """A quoted text (`"gold"`)."""

    value: str
    pos: int = _pos()


@dataclass(frozen=True)
class Number:
    """A number (`3`, `0.5`, `-2`); amounts of money are written in yuan."""

    value: int | float
    pos: int = _pos()


@dataclass(frozen=True)
class Bool:
    """`true` or `false`."""

    value: bool
    pos: int = _pos()


@dataclass(frozen=True)
class Null:
    """`null`: no value."""

    pos: int = _pos()


@dataclass(frozen=True)
class DateValue:
    """A calendar date (`2025-01-31`)."""

    value: date
    pos: int = _pos()


@dataclass(frozen=True)
class Today:
    """`today`: the day the rule is evaluated, in the brand's timezone."""

    pos: int = _pos()


@dataclass(frozen=True)
class Duration:
    """A number of days or weeks (`30d`, `12w`)."""

    amount: int
    unit: str  # "d" or "w"
    pos: int = _pos()

    @property
    def days(self) -> int:
        """The duration in days."""
        return self.amount * DAYS_PER_UNIT[self.unit]


@dataclass(frozen=True)
class Shift:
    """A date moved by a duration (`today - 30d`)."""

    base: Value
    sign: str  # "+" or "-"
    by: Duration
    pos: int = _pos()


@dataclass(frozen=True)
class Aggregate:
    """Orders or spend (yuan) in a category over the last days (`orders_in("水果", 30d)`).

    `category` None means every category (`orders_in(30d)`).
    """

    kind: str  # "orders_in" or "spend_in"
    category: str | None
    window: Duration
    pos: int = _pos()


Value = FieldRef | Text | Number | Bool | Null | DateValue | Today | Duration | Shift | Aggregate


@dataclass(frozen=True)
class Compare:
    """`left op right` with op one of == != < <= > >=."""

    op: str
    left: Value
    right: Value
    pos: int = _pos()


@dataclass(frozen=True)
class InList:
    """`left in (a, b, ...)`, or `not in` when negated."""

    left: Value
    items: tuple[Value, ...]
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class Member:
    """`"x" in tags`: the value is one of the items of a list field (`not in` when negated)."""

    item: Value
    collection: FieldRef
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class Contains:
    """`name contains "王"`: substring test (`not contains` when negated)."""

    left: Value
    right: Value
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class InSegment:
    """`in_segment("recent-complainers")`: the member is in a saved segment."""

    name: str
    pos: int = _pos()


@dataclass(frozen=True)
class And:
    """Every condition holds."""

    items: tuple[Rule, ...]
    pos: int = _pos()


@dataclass(frozen=True)
class Or:
    """At least one condition holds."""

    items: tuple[Rule, ...]
    pos: int = _pos()


@dataclass(frozen=True)
class Not:
    """The condition does not hold."""

    item: Rule
    pos: int = _pos()


Rule = Compare | InList | Member | Contains | InSegment | And | Or | Not


def quote(text: str) -> str:
    """Writes a text as a rule literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_number(value: int | float) -> str:
    """Writes a number the tokenizer reads back exactly (no exponent)."""
    if isinstance(value, int):
        return str(int(value))
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def value_text(value: Value) -> str:
    """Prints a value in canonical form."""
    match value:
        case FieldRef(name=name):
            return name
        case Text(value=text):
            return quote(text)
        case Number(value=number):
            return format_number(number)
        case Bool(value=flag):
            return "true" if flag else "false"
        case Null():
            return "null"
        case DateValue(value=day):
            return day.isoformat()
        case Today():
            return "today"
        case Duration(amount=amount, unit=unit):
            return f"{amount}{unit}"
        case Shift(base=base, sign=sign, by=by):
            return f"{value_text(base)} {sign} {value_text(by)}"
        case Aggregate(kind=kind, category=category, window=window):
            args = (
                [value_text(window)] if category is None else [quote(category), value_text(window)]
            )
            return f"{kind}({', '.join(args)})"
    raise TypeError(f"not a value: {value!r}")


def to_text(rule: Rule) -> str:
    """Prints a rule in canonical form: parsing the text gives the same tree."""
    match rule:
        case Compare(op=op, left=left, right=right):
            return f"{value_text(left)} {op} {value_text(right)}"
        case InList(left=left, items=items, negated=negated):
            listed = ", ".join(value_text(item) for item in items)
            return f"{value_text(left)} {'not in' if negated else 'in'} ({listed})"
        case Member(item=item, collection=collection, negated=negated):
            return f"{value_text(item)} {'not in' if negated else 'in'} {collection.name}"
        case Contains(left=left, right=right, negated=negated):
            word = "not contains" if negated else "contains"
            return f"{value_text(left)} {word} {value_text(right)}"
        case InSegment(name=name):
            return f"in_segment({quote(name)})"
        case And(items=items):
            return " and ".join(_grouped(item, loose=(Or, And)) for item in items)
        case Or(items=items):
            return " or ".join(_grouped(item, loose=(Or,)) for item in items)
        case Not(item=item):
            return "not " + _grouped(item, loose=(Or, And))
    raise TypeError(f"not a rule: {rule!r}")


def _grouped(rule: Rule, *, loose: tuple[type, ...]) -> str:
    """Parenthesises a part that would otherwise bind differently when read back."""
    text = to_text(rule)
    return f"({text})" if isinstance(rule, loose) else text


def segment_names(rule: Rule) -> set[str]:
    """Returns the saved segments a rule refers to directly."""
    match rule:
        case InSegment(name=name):
            return {name}
        case And(items=items) | Or(items=items):
            return set().union(*(segment_names(item) for item in items))
        case Not(item=item):
            return segment_names(item)
    return set()
