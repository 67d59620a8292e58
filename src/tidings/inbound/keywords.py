"""Opt-out, opt-in and help keywords in what members text back, as people really write them.

A message is first folded (full-width forms to ASCII, case ignored) and cut into clauses at
punctuation and emoji. Any listed keyword counts when it is all the message says, give or
take politeness ("请退订", "TD 谢谢", "Stop!"). A few unmistakable ones also count inside a
sentence ("我要退订，别再发了"), unless a negation stands just before them in the same
clause ("不要退订", "don't stop"). Opt-in and help need the whole message, because
re-subscribing someone by mistake is worse than asking them again.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from tidings.config import Settings

# Clause breaks: anything that is neither a word character nor a space (punctuation, emoji).
_BREAK = re.compile(r"[^\w\s]+|_+")
_SPACES = re.compile(r"\s+")
# Words that carry no meaning of their own around a keyword ("请退订", "stop please").
_FILLERS = re.compile(
    r"请|麻烦|谢谢|谢了|多谢|您好|你好|我要|我想|帮我|给我|一下|马上|立即|赶紧|短信|"
    r"了|吧|啊|呀|哈|的|嗯|哦|呢|"
    r"(?<![a-z])(?:please|pls|thanks|thank you|thankyou|thx|hi|hello|now)(?![a-z])"
)
_CJK_NEGATIONS = "不别勿没无莫甭"
_LATIN_NEGATIONS = frozenset({"don", "dont", "not", "never", "no", "t", "didn", "won"})
NEGATION_REACH = 4  # characters before a keyword, within its clause, a negation may sit
# Keywords that read differently when a word follows them: 退订单 is "return the order".
_FALSE_FRIENDS = {"退订": "单金款货", "退訂": "單金款貨"}


class KeywordKind(enum.StrEnum):
    """What a keyword asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """The keyword found and what it asks for."""

    kind: KeywordKind
    keyword: str


@dataclass(frozen=True)
class KeywordRules:
    """The brand's keyword lists, folded the way messages are."""

    opt_out: frozenset[str]
    opt_out_anywhere: tuple[str, ...]
    opt_in: frozenset[str]
    help: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeywordRules:
        """Reads the lists of TIDINGS_REPLY_*_KEYWORDS (comma-separated)."""
        return _rules(
            settings.reply_opt_out_keywords,
            settings.reply_opt_out_anywhere,
            settings.reply_opt_in_keywords,
            settings.reply_help_keywords,
        )


@lru_cache(maxsize=16)
def _rules(opt_out: str, anywhere: str, opt_in: str, help_words: str) -> KeywordRules:
    def words(text: str) -> list[str]:
        return [w for w in (compact(part) for part in text.split(",")) if w]

    every_stop = words(opt_out)
    return KeywordRules(
        opt_out=frozenset(every_stop),
        # Longest first, so STOPALL is reported rather than STOP.
        opt_out_anywhere=tuple(sorted(set(words(anywhere)), key=len, reverse=True)),
        opt_in=frozenset(words(opt_in)),
        help=frozenset(words(help_words)),
    )


def fold(text: str) -> str:
    """Full-width forms to ASCII, compatibility characters to their plain form, case folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def clauses(text: str) -> list[str]:
    """The folded text cut at punctuation and emoji, each clause with single spaces."""
    parts = (_SPACES.sub(" ", part).strip() for part in _BREAK.split(fold(text)))
    return [part for part in parts if part]


def compact(text: str) -> str:
    """The folded text with every space, punctuation mark and emoji removed."""
    return "".join(clause.replace(" ", "") for clause in clauses(text))


def _bare(text: str) -> str:
    """The compact text without politeness, e.g. '请退订，谢谢！' -> '退订'."""
    spaced = " ".join(clauses(text))
    return _FILLERS.sub("", spaced).replace(" ", "")


def _is_latin(word: str) -> bool:
    return word.isascii()


def _negated(clause: str, start: int) -> bool:
    before = clause[:start]
    if any(char in _CJK_NEGATIONS for char in before.replace(" ", "")[-NEGATION_REACH:]):
        return True
    latin = re.findall(r"[a-z]+", before)
    return any(word in _LATIN_NEGATIONS for word in latin[-2:])


def _found_in(clause: str, keyword: str) -> bool:
    """Tells whether `keyword` stands un-negated in `clause` (a folded clause)."""
    if _is_latin(keyword):
        pattern = rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])"
        return any(not _negated(clause, m.start()) for m in re.finditer(pattern, clause))
    text = clause.replace(" ", "")
    after = _FALSE_FRIENDS.get(keyword, "")
    start = text.find(keyword)
    while start >= 0:
        end = start + len(keyword)
        follows = text[end : end + 1]
        if not _negated(text, start) and not (follows and follows in after):
            return True
        start = text.find(keyword, start + 1)
    return False


def detect(text: str, rules: KeywordRules) -> KeywordMatch | None:
    """The keyword `text` carries, or None when it is no opt-out, opt-in or help request."""
    bare = _bare(text)
    if bare in rules.opt_out:
        return KeywordMatch(KeywordKind.OPT_OUT, bare)
    if bare in rules.opt_in:
        return KeywordMatch(KeywordKind.OPT_IN, bare)
    if bare in rules.help:
        return KeywordMatch(KeywordKind.HELP, bare)
    for clause in clauses(text):
        for keyword in rules.opt_out_anywhere:
            if _found_in(clause, keyword):
                return KeywordMatch(KeywordKind.OPT_OUT, keyword)
    return None
