"""Word lists and the one-pass matcher that finds their terms in a message, however disguised.

Text is normalised character by character before matching: full-width forms become
half-width, ASCII letters lower case, and spaces, punctuation, symbols and emoji are
skipped, so `最 佳`, `最*佳` and `Ｖ信` match `最佳` and `v信`. Each kept character remembers
where it stood, so matches are reported at their positions in the original text. The same
normalisation exists as Polars expressions (identical tables) for checking millions of texts;
`sensitive_terms` finds the blocking term of each, reading a template's literal text once
when it is given the filled-in values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path

import ahocorasick
import polars as pl

from tidings.config import get_settings
from tidings.content.boundaries import literal_stretches, windowed_text
from tidings.content.render import Filled
from tidings.content.template import Template

FULL_WIDTH_OFFSET = 0xFEE0  # U+FF01..U+FF5E are U+0021..U+007E shifted by this much
_FOLD = {0x3000: " "}
_FOLD.update({c: chr(c - FULL_WIDTH_OFFSET).lower() for c in range(0xFF01, 0xFF5F)})
_FOLD.update({c: chr(c).lower() for c in range(ord("A"), ord("Z") + 1)})
FOLD_TABLE = str.maketrans(_FOLD)
_FOLD_SOURCE = tuple(chr(c) for c in _FOLD)
_FOLD_TARGET = tuple(_FOLD.values())
# Characters skipped between the characters of a term: spaces, punctuation, symbols, emoji.
SKIPPED_RANGES = (
    (0x09, 0x0D),
    (0x20, 0x2F),
    (0x3A, 0x40),
    (0x5B, 0x60),
    (0x7B, 0x7E),
    (0xA0, 0xBF),
    (0xD7, 0xD7),
    (0xF7, 0xF7),
    (0x2000, 0x206F),
    (0x2190, 0x23FF),
    (0x2500, 0x27BF),
    (0x3000, 0x3004),
    (0x3008, 0x303F),
    (0x30FB, 0x30FB),
    (0xFE00, 0xFE0F),
    (0xFE10, 0xFE1F),
    (0xFE30, 0xFE6F),
    (0xFEFF, 0xFEFF),
    (0xFF61, 0xFF65),
    (0x1F000, 0x1FAFF),
    (0xE0000, 0xE007F),
)
SKIPPED = frozenset(chr(c) for low, high in SKIPPED_RANGES for c in range(low, high + 1))
SKIPPED_CLASS = "[" + "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in SKIPPED_RANGES) + "]"
# Ordinal phrases that contain an absolute term but make no claim ("第一次", "第一天").
ORDINAL_PHRASES = [
    "第一次",
    "第一天",
    "第一步",
    "第一件",
    "第一单",
    "第一批",
    "第一期",
    "第一周",
    "第一轮",
    "第一波",
    "第一个月",
    "第一杯",
    "第一份",
    "第一名额",
    "唯一码",
    "唯一编号",
]


class WordKind(StrEnum):
    """Why a term is on a list."""

    ABSOLUTE = "absolute"  # advertising-law absolute term: a warning
    SENSITIVE = "sensitive"  # blocked: a send must not carry it
    ORDINAL = "ordinal"  # lifts the absolute-term warning inside it


class WordListError(ValueError):
    """A word list that cannot be read."""


@dataclass(frozen=True)
class Term:
    """A listed term, as written in its list, with what to say instead (absolute terms)."""

    term: str
    kind: WordKind
    suggestion: str


@dataclass(frozen=True)
class WordMatch:
    """A term found in a text, at [start, end) of the original text."""

    term: Term
    start: int
    end: int


def normalize(text: str) -> tuple[str, list[int]]:
    """Returns the normalised text and, per kept character, its index in `text`."""
    folded = text.translate(FOLD_TABLE)
    kept = [index for index, char in enumerate(folded) if char not in SKIPPED]
    return "".join(folded[index] for index in kept), kept


def normalize_term(term: str) -> str:
    """Returns `term` as matching sees it."""
    return normalize(term)[0]


def normalize_expr(text: pl.Expr) -> pl.Expr:
    """The Polars form of `normalize` (the text only): the same tables, no positions."""
    folded = text.str.replace_many(list(_FOLD_SOURCE), list(_FOLD_TARGET))
    return folded.str.replace_all(SKIPPED_CLASS, "")


def _read_list(text: str, *, kind: WordKind) -> list[Term]:
    terms = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        term, _, suggestion = line.partition("\t")
        terms.append(Term(term=term.strip(), kind=kind, suggestion=suggestion.strip()))
    return terms


def _shipped(name: str) -> str:
    return resources.files("tidings.content").joinpath("words", name).read_text("utf-8")


class WordMatcher:
    """Finds every listed term in a text in one Aho-Corasick pass over its normalised form."""

    def __init__(self, terms: list[Term]) -> None:
        self.automaton = ahocorasick.Automaton()
        self.by_key: dict[str, list[Term]] = {}
        for term in terms:
            key = normalize_term(term.term)
            if key:
                self.by_key.setdefault(key, []).append(term)
        for key, entries in self.by_key.items():
            self.automaton.add_word(key, (key, tuple(entries)))
        if self.by_key:
            self.automaton.make_automaton()
        sensitive = {k: e for k, e in self.by_key.items() if _has(e, WordKind.SENSITIVE)}
        # Normalised sensitive keys, and the term shown for each, for the Polars path.
        self.sensitive_keys = sorted(sensitive)
        self.sensitive_shown = {k: _first(e, WordKind.SENSITIVE).term for k, e in sensitive.items()}

    def find(self, text: str) -> list[WordMatch]:
        """Returns every absolute or sensitive term in `text`, ordinal phrases applied."""
        if not self.by_key:
            return []
        normal, kept = normalize(text)
        found: list[tuple[int, int, Term]] = []
        for last, (key, entries) in self.automaton.iter(normal):
            first = last - len(key) + 1
            found.extend((first, last, term) for term in entries)
        covers = [(f, la, t.kind) for f, la, t in found]
        matches = [
            WordMatch(term=term, start=kept[first], end=kept[last] + 1)
            for first, last, term in found
            if term.kind is not WordKind.ORDINAL and not _covered(first, last, term.kind, covers)
        ]
        return sorted(matches, key=lambda m: (m.start, -m.end, m.term.term))


def _covered(
    first: int, last: int, kind: WordKind, covers: list[tuple[int, int, WordKind]]
) -> bool:
    """Whether a longer term of the same kind, or an ordinal phrase, holds [first, last]."""
    for f, la, k in covers:
        holds = f <= first and last <= la and (f, la) != (first, last)
        if holds and (k is kind or (k is WordKind.ORDINAL and kind is WordKind.ABSOLUTE)):
            return True
    return False


def _has(entries: list[Term], kind: WordKind) -> bool:
    return any(term.kind is kind for term in entries)


def _first(entries: list[Term], kind: WordKind) -> Term:
    return next(term for term in entries if term.kind is kind)


@lru_cache(maxsize=4)
def _matcher_for(extra: str | None, stamp: float) -> WordMatcher:
    terms = _read_list(_shipped("absolute.txt"), kind=WordKind.ABSOLUTE)
    terms += _read_list(_shipped("sensitive.txt"), kind=WordKind.SENSITIVE)
    terms += [Term(term=p, kind=WordKind.ORDINAL, suggestion="") for p in ORDINAL_PHRASES]
    if extra is not None:
        text = Path(extra).read_text("utf-8")
        terms += _read_list(text, kind=WordKind.SENSITIVE)
    return WordMatcher(terms)


def word_matcher(*, sensitive_words_file: Path | None = None) -> WordMatcher:
    """Returns the matcher for the shipped lists plus the brand's file (settings unless given)."""
    extra = sensitive_words_file or get_settings().sensitive_words_file
    if extra is None:
        return _matcher_for(None, 0.0)
    try:
        stamp = extra.stat().st_mtime
    except OSError as error:
        raise WordListError(
            f"sensitive words file '{extra}' cannot be read ({error.strerror}); "
            "fix TIDINGS_SENSITIVE_WORDS_FILE or create the file"
        ) from None
    return _matcher_for(str(extra), stamp)


# Many texts at once.


def _longest_keys(normal: pl.Series, keys: list[str]) -> pl.Series:
    """The longest of `keys` in each text (then the first in code-point order), or null."""
    term = pl.element()
    found = normal.str.extract_many(keys, overlapping=True)
    longest = found.list.eval(
        term.sort_by([term.str.len_chars(), term], descending=[True, False]).first()
    )
    return longest.list.first()


def _literal_key(template: Template, matcher: WordMatcher) -> str | None:
    """The longest sensitive key wholly inside the template's literal text, or None."""
    found = {
        key
        for stretch in literal_stretches(template)
        for _, (key, _entries) in matcher.automaton.iter(normalize(stretch)[0])
        if key in matcher.sensitive_shown
    }
    return min(found, key=lambda key: (-len(key), key)) if found else None


def _scanned_text(filled: Filled | None, keys: list[str]) -> pl.Expr:
    """What the sensitive keys are looked for in: the normalised text, or the values' windows."""
    if filled is None:
        return normalize_expr(pl.col("text"))
    separator = next(s for s in ("\x00", "\ufffc", "\uffff") if all(s not in k for k in keys))
    return windowed_text(
        filled,
        width=max(len(key) for key in keys) - 1,
        separator=separator,
        literal=lambda text: normalize(text)[0],
        value=normalize_expr,
    )


def sensitive_terms(
    frame: pl.DataFrame, *, matcher: WordMatcher, filled: Filled | None
) -> pl.Series:
    """Per text of `frame` (`text`, and the filled values), the sensitive term that blocks it.

    That is the longest key found, then the first in code-point order, shown as listed; null
    when there is none. With `filled`, keys wholly inside the literal text are looked for once.
    """
    keys = matcher.sensitive_keys
    chosen = pl.Series("key", [None] * frame.height, dtype=pl.String)
    if not keys:
        return chosen
    scanned = frame.with_row_index().with_columns(normal=_scanned_text(filled, keys))
    hit = scanned.filter(pl.col("normal").str.contains_any(keys))
    chosen = chosen.scatter(hit["index"], _longest_keys(hit["normal"], keys))
    constant = None if filled is None else _literal_key(filled.template, matcher)
    if constant is not None:
        key = pl.col("key")
        shorter = key.str.len_chars() < len(constant)
        later = (key.str.len_chars() == len(constant)) & (key > constant)
        worse = key.is_null() | shorter | later
        better = pl.when(worse).then(pl.lit(constant)).otherwise(key)
        chosen = chosen.to_frame().select(better).to_series()
    return chosen.replace_strict(matcher.sensitive_shown, default=None, return_dtype=pl.String)
