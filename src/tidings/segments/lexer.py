"""Splits segment-rule text into tokens, and the error every part of the language raises."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "true", "false", "null", "today"})
MAX_DURATION_DAYS = 36_500  # a hundred years: longer windows are typing mistakes
MAX_NUMBER = 10**15  # larger literals overflow the store's integers once in cents

# Quote pairs a rule may use: ASCII double and single quotes, and the Chinese ones an
# input method types.
QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}
OPENING = {"(": "(", "（": "("}
CLOSING = {")": ")", "）": ")"}
COMMAS = {",", "，"}

_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?![\w.\-])", re.ASCII)
_DURATION = re.compile(r"(\d+)([A-Za-z]\w*)", re.ASCII)
_NUMBER = re.compile(r"\d+(\.\d+)?(?![\w.])", re.ASCII)
_DIGITS = frozenset("0123456789")


class RuleError(ValueError):
    """A rule a person wrote cannot be read or used; `position` is its 1-based column.

    `text` is the rule the column counts in, when it is not the text the person sent (a
    rule built from JSON is checked in its canonical text).
    """

    def __init__(self, message: str, position: int | None, text: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        return f"column {self.position}: {self.message}"


@dataclass(frozen=True)
class Token:
    """One word, literal or sign of a rule, with its column."""

    kind: str  # name, text, number, date, duration, op, (, ), ",", +, -, end
    text: str
    value: object
    pos: int

    def describe(self) -> str:
        """Names the token for an error message."""
        if self.kind == "end":
            return "the end of the rule"
        return f"'{self.text}'"


def tokenize(text: str) -> list[Token]:
    """Splits `text` into tokens ending with an `end` token, or raises RuleError."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        token = _next_token(text, index)
        tokens.append(token)
        index += len(token.text)
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


def _next_token(text: str, index: int) -> Token:
    char = text[index]
    pos = index + 1
    if char in QUOTES:
        return _text(text, index)
    if char in _DIGITS:
        return _numeric(text, index)
    if char.isalpha() or char == "_":
        end = index + 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        return Token("name", text[index:end], None, pos)
    pair = text[index : index + 2]
    if pair in {"==", "!=", "<=", ">="}:
        return Token("op", pair, pair, pos)
    if pair == "<>":
        raise RuleError("write != for 'is not equal to'", pos)
    if pair in {"&&", "||"}:
        raise RuleError(f"write '{'and' if pair == '&&' else 'or'}' instead of '{pair}'", pos)
    if char in "<>":
        return Token("op", char, char, pos)
    if char in OPENING:
        return Token("(", char, None, pos)
    if char in CLOSING:
        return Token(")", char, None, pos)
    if char in COMMAS:
        return Token(",", char, None, pos)
    if char in "+-":
        return Token(char, char, None, pos)
    raise RuleError(_unexpected(char), pos)


def _unexpected(char: str) -> str:
    hints = {
        "=": "write == to compare",
        "&": "write 'and' instead of '&'",
        "|": "write 'or' instead of '|'",
        "!": "write 'not' (or != to compare)",
        "[": 'write a list in parentheses, as in tier in ("gold", "silver")',
        "]": 'write a list in parentheses, as in tier in ("gold", "silver")',
    }
    return hints.get(char, f"unexpected character '{char}'")


def _text(text: str, index: int) -> Token:
    opening = text[index]
    closing = QUOTES[opening]
    chars: list[str] = []
    end = index + 1
    while end < len(text):
        char = text[end]
        if char == "\\" and end + 1 < len(text) and text[end + 1] in {"\\", closing}:
            chars.append(text[end + 1])
            end += 2
            continue
        if char == closing:
            return Token("text", text[index : end + 1], "".join(chars), index + 1)
        chars.append(char)
        end += 1
    raise RuleError(f"this text is never closed; add {closing} at its end", index + 1)


def _numeric(text: str, index: int) -> Token:
    pos = index + 1
    if match := _DATE.match(text, index):
        year, month, day = (int(part) for part in match.groups())
        try:
            value = date(year, month, day)
        except ValueError:
            message = f"{match.group(0)} is not a date; write dates as 2025-01-31"
            raise RuleError(message, pos) from None
        return Token("date", match.group(0), value, pos)
    if match := _DURATION.match(text, index):
        amount, unit = int(match.group(1)), match.group(2)
        if unit.lower() not in {"d", "w"}:
            raise RuleError(
                f"'{match.group(0)}' is not a duration; write days or weeks, as in 30d or 12w"
                " (months as days: 6 months ≈ 180d)",
                pos,
            )
        if amount * (7 if unit.lower() == "w" else 1) > MAX_DURATION_DAYS:
            raise RuleError(f"{match.group(0)} is longer than {MAX_DURATION_DAYS} days", pos)
        return Token("duration", match.group(0), (amount, unit.lower()), pos)
    if match := _NUMBER.match(text, index):
        literal = match.group(0)
        number: int | float = float(literal) if match.group(1) else int(literal)
        if abs(number) >= MAX_NUMBER:
            raise RuleError(f"{literal} is too large a number", pos)
        return Token("number", literal, number, pos)
    raise RuleError(
        "a number is malformed here; write 3, 0.5, a date (2025-01-31) or a duration (30d)", pos
    )
