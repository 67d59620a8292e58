"""The segment language: rule text -> typed syntax tree, checked against the fields.

A rule describes an audience, e.g.
`tier in ("gold", "silver") and days_since_last_order <= 90 and "榴莲爱好者" in tags`.

Grammar (EBNF; keywords are case-insensitive, field names are not):

    rule        = or_expr ;
    or_expr     = and_expr , { "or" , and_expr } ;
    and_expr    = not_expr , { "and" , not_expr } ;
    not_expr    = "not" , not_expr | "(" , or_expr , ")" | condition ;
    condition   = "in_segment" , "(" , text , ")"
                | value , [ compare_op , value
                          | [ "not" ] , "in" , ( "(" , [ value , { "," , value } ] , ")" | field )
                          | [ "not" ] , "contains" , value ] ;
    compare_op  = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
    value       = primary , { ( "+" | "-" ) , duration } ;
    primary     = field | text | [ "-" ] , number | "true" | "false" | "null"
                | date | "today" | duration | aggregate ;
    aggregate   = ( "orders_in" | "spend_in" ) , "(" , [ text , "," ] , duration , ")" ;
    field       = letter , { letter | digit | "_" } ;   (* `tidings segment fields` lists them *)
    text        = '"' , { character } , '"' ;           (* also '...' and “...”; \\" escapes *)
    number      = digit , { digit } , [ "." , digit , { digit } ] ;
    date        = digit * 4 , "-" , digit * 2 , "-" , digit * 2 ;   (* 2025-01-31 *)
    duration    = digit , { digit } , ( "d" | "w" ) ;              (* 30d, 12w *)

Meaning:
- `not` binds tighter than `and`, which binds tighter than `or`; parentheses group.
- A true-or-false field alone is a condition: `churn_risk` means `churn_risk == true`.
- `x in ("a", "b")` tests a list of values; `"x" in tags` tests a list field;
  `name contains "王"` tests a substring.
- Money is written in yuan (`spend_90d > 200`) and kept in cents; the compiler converts.
- Dates: `today` is the day of evaluation in the brand's timezone; `today - 30d`,
  `next_run_out_on <= today + 1w`. A time field compared with a date compares its day in
  the brand's timezone (`last_order_at < 2025-01-01` means before that day began).
- `orders_in("水果", 30d)` counts the member's orders with a line in category 水果 over the
  last 30 days (today and the 29 days before); `spend_in("母婴", 90d)` sums those lines'
  amounts in yuan; without a category (`orders_in(30d)`) every category counts.
- `in_segment("name")` is true for the members of a saved segment.
- A field with no value (null) makes a comparison false, except `!=`, `not in` and
  `not contains`, which are then true; `x == null` tests for no value.
"""

from __future__ import annotations

from datetime import date

from tidings.segments.fields import FIELDS, FieldType, suggest_field
from tidings.segments.lexer import KEYWORDS, RuleError, Token, tokenize
from tidings.segments.tree import (
    AGGREGATES,
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
)
from tidings.segments.typecheck import check_compare, check_contains, check_in_list, check_member

__all__ = ["Rule", "RuleError", "parse", "to_text"]

MAX_DEPTH = 64  # nested groups and nots; deeper text is refused, not recursed into
FUNCTIONS = (*AGGREGATES, "in_segment")


def parse(text: str) -> Rule:
    """Parses rule text into a checked syntax tree, or raises RuleError with the column."""
    if not text.strip():
        raise RuleError('the rule is empty; write a condition, as in tier == "gold"', 1)
    return _Parser(tokenize(text)).parse_rule()


class _Parser:
    """A recursive-descent parser over the tokens of one rule."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_keyword(self, word: str, offset: int = 0) -> bool:
        token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
        return token.kind == "name" and token.text.lower() == word

    def expect(self, kind: str, what: str) -> Token:
        if self.token.kind != kind:
            raise RuleError(f"expected {what} but found {self.token.describe()}", self.token.pos)
        return self.advance()

    def parse_rule(self) -> Rule:
        rule = self.or_expr()
        if self.token.kind != "end":
            if self.token.kind == ")":
                raise RuleError("this ')' closes no '('; remove it", self.token.pos)
            raise RuleError(
                f"expected 'and', 'or' or the end of the rule but found {self.token.describe()}",
                self.token.pos,
            )
        return rule

    def or_expr(self) -> Rule:
        first = self.token.pos
        items = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items), pos=first)

    def and_expr(self) -> Rule:
        first = self.token.pos
        items = [self.not_expr()]
        while self.is_keyword("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items), pos=first)

    def not_expr(self) -> Rule:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"the rule nests more than {MAX_DEPTH} levels; simplify it", 1)
        try:
            start = self.token
            if self.is_keyword("not"):
                self.advance()
                return Not(self.not_expr(), pos=start.pos)
            if start.kind == "(":
                self.advance()
                inner = self.or_expr()
                if self.token.kind != ")":
                    if self.token.kind == "end":
                        raise RuleError("this '(' is never closed; add ')'", start.pos)
                    raise RuleError(
                        f"expected ')' or 'and'/'or' but found {self.token.describe()}",
                        self.token.pos,
                    )
                self.advance()
                return inner
            return self.condition()
        finally:
            self.depth -= 1

    def condition(self) -> Rule:
        start = self.token
        if self.is_keyword("in_segment") and self.tokens[self.index + 1].kind == "(":
            self.advance()
            self.advance()
            name = self.expect("text", "the quoted name of a saved segment")
            self.closing(start)
            return InSegment(str(name.value), pos=start.pos)
        left = self.value()
        token = self.token
        if token.kind == "op":
            self.advance()
            right = self.value(expect=_type_hint(left))
            return check_compare(Compare(str(token.value), left, right, pos=token.pos))
        negated = self.is_keyword("not") and (
            self.is_keyword("in", 1) or self.is_keyword("contains", 1)
        )
        if negated:
            self.advance()
        if self.is_keyword("in"):
            return self.in_test(left, negated, self.advance())
        if self.is_keyword("contains"):
            at = self.advance()
            right = self.value(expect=FieldType.TEXT)
            return check_contains(Contains(left, right, negated, pos=at.pos))
        return self.bare(left, start)

    def in_test(self, left: Value, negated: bool, at: Token) -> Rule:
        if self.token.kind == "(":
            opening = self.advance()
            items: list[Value] = []
            while self.token.kind != ")":
                if items:
                    self.expect(",", "',' or ')'")
                if self.token.kind == "end":
                    raise RuleError("this '(' is never closed; add ')'", opening.pos)
                items.append(self.value(expect=_type_hint(left)))
            self.advance()
            return check_in_list(InList(left, tuple(items), negated, pos=at.pos))
        if self.token.kind == "name" and self.token.text not in KEYWORDS:
            collection = self.value()
            if isinstance(collection, FieldRef):
                return check_member(Member(left, collection, negated, pos=at.pos))
        raise RuleError(
            'after in, write a list such as ("gold", "silver") or a list field such as tags',
            self.token.pos,
        )

    def bare(self, left: Value, start: Token) -> Rule:
        if isinstance(left, FieldRef) and FIELDS[left.name].type is FieldType.BOOL:
            return Compare("==", left, Bool(True, pos=left.pos), pos=left.pos)
        if self.token.kind == "end" or self.is_keyword("and") or self.is_keyword("or"):
            raise RuleError(
                f"{start.text} is not a condition by itself; compare it, as in {_example(left)}",
                start.pos,
            )
        if self.token.kind == "name" and self.token.text.lower() in {"is", "like", "equals"}:
            raise RuleError(f"write == or contains instead of '{self.token.text}'", self.token.pos)
        raise RuleError(
            f"expected a comparison (==, !=, <, <=, >, >=), in or contains but found"
            f" {self.token.describe()}",
            self.token.pos,
        )

    def value(self, expect: FieldType | None = None) -> Value:
        value = self.primary(expect)
        while self.token.kind in {"+", "-"}:
            sign = self.advance()
            duration = self.primary(None)
            if not isinstance(duration, Duration):
                raise RuleError(
                    f"only a duration (30d, 12w) can be added to or taken from a date;"
                    f" found {_describe(duration)}",
                    duration.pos,
                )
            value = _shift(value, sign, duration)
        return value

    def primary(self, expect: FieldType | None) -> Value:
        token = self.advance()
        if token.kind in {"text", "number", "date", "duration"}:
            return _literal(token)
        if token.kind == "-" and self.token.kind == "number":
            number = self.advance()
            return Number(-number.value, pos=token.pos)  # type: ignore[operator]
        if token.kind != "name":
            if token.kind == "end":
                raise RuleError("the rule ends too early; a value is missing", token.pos)
            raise RuleError(f"expected a value but found {token.describe()}", token.pos)
        word = token.text.lower()
        constants = {"true": Bool(True, token.pos), "false": Bool(False, token.pos)}
        if word in constants:
            return constants[word]
        if word == "null":
            return Null(pos=token.pos)
        if word == "today":
            return Today(pos=token.pos)
        if self.token.kind == "(":
            return self.call(token)
        if word in KEYWORDS:
            raise RuleError(f"expected a value but found '{token.text}'", token.pos)
        if token.text not in FIELDS:
            raise RuleError(_unknown_field(token.text, expect), token.pos)
        return FieldRef(token.text, pos=token.pos)

    def call(self, name: Token) -> Value:
        if name.text not in AGGREGATES:
            if name.text == "in_segment":
                raise RuleError("in_segment(...) is a condition, not a value", name.pos)
            close = suggest_function(name.text)
            hint = (
                f"did you mean '{close}'?" if close else f"the functions are {', '.join(FUNCTIONS)}"
            )
            raise RuleError(f"unknown function '{name.text}'; {hint}", name.pos)
        self.advance()
        category: str | None = None
        if self.token.kind == "text":
            category = str(self.advance().value)
            if self.token.kind == ",":
                self.advance()
        window = self.token
        if window.kind != "duration":
            raise RuleError(
                f"{name.text} needs a window such as 30d or 12w, as in"
                f' {name.text}("水果", 30d); found {window.describe()}',
                window.pos,
            )
        self.advance()
        duration = _literal(window)
        assert isinstance(duration, Duration)
        if duration.amount == 0:
            raise RuleError("a window of 0 days holds no orders; use at least 1d", window.pos)
        self.closing(name)
        return Aggregate(name.text, category, duration, pos=name.pos)

    def closing(self, opening: Token) -> None:
        if self.token.kind != ")":
            if self.token.kind == "end":
                raise RuleError(f"{opening.text}( is never closed; add ')'", opening.pos)
            raise RuleError(f"expected ')' but found {self.token.describe()}", self.token.pos)
        self.advance()


def suggest_function(name: str) -> str | None:
    """Returns the function a mistyped name most likely means."""
    import difflib

    close = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.6)
    return close[0] if close else None


def _literal(token: Token) -> Value:
    value = token.value
    if isinstance(value, str):
        return Text(value, pos=token.pos)
    if isinstance(value, int | float):
        return Number(value, pos=token.pos)
    if isinstance(value, date):
        return DateValue(value, pos=token.pos)
    assert isinstance(value, tuple)
    amount, unit = value
    return Duration(int(amount), str(unit), pos=token.pos)


def _shift(value: Value, sign: Token, duration: Duration) -> Value:
    kind = _type_hint(value)
    if kind not in {FieldType.DATE, FieldType.DATETIME}:
        raise RuleError(
            f"{_describe(value)} is not a date; a duration can only move a date, as in today - 30d",
            sign.pos,
        )
    return Shift(value, sign.kind, duration, pos=value.pos)


def _type_hint(value: Value) -> FieldType | None:
    match value:
        case FieldRef(name=name):
            return FIELDS[name].type
        case Today() | DateValue():
            return FieldType.DATE
        case Shift(base=base):
            return _type_hint(base)
    return None


def _describe(value: Value) -> str:
    from tidings.segments.tree import value_text

    return value_text(value)


def _example(value: Value) -> str:
    kind = _type_hint(value)
    examples = {
        FieldType.TEXT: f'{_describe(value)} == "..."',
        FieldType.LIST: f'"..." in {_describe(value)}',
        FieldType.DATE: f"{_describe(value)} >= today - 30d",
        FieldType.DATETIME: f"{_describe(value)} >= today - 30d",
    }
    return examples.get(kind, f"{_describe(value)} >= 3") if kind else f"{_describe(value)} >= 3"


def _unknown_field(name: str, expect: FieldType | None) -> str:
    close = suggest_field(name)
    if close:
        return f"unknown field '{name}'; did you mean '{close}'?"
    if expect is FieldType.TEXT:
        return f"unknown field '{name}'; to compare with a text, quote it: \"{name}\""
    return f"unknown field '{name}'; `tidings segment fields` lists the fields"
