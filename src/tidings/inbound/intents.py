"""What a free-text reply asks for: an intent and how sure we are of it.

Words a brand lists for each intent are looked for in one pass over the folded reply
(Aho-Corasick). When none is there, the reply is cut into words with jieba and each word is
compared with the lists by rapidfuzz, so a typo ("poinst", "营业事件") still points the
right way, with less confidence. Complaints outrank everything else: whatever else a reply
says, a complaint is never answered by a machine.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick
from rapidfuzz import fuzz, process

from tidings.inbound.keywords import compact, fold


class Intent(enum.StrEnum):
    """What a reply asks for."""

    POINTS = "points"
    STOCK = "stock"
    BOOKING = "booking"
    DELIVERY = "delivery"
    COUPON = "coupon"
    COMPLAINT = "complaint"
    HUMAN = "human"
    HOURS = "hours"
    THANKS = "thanks"
    WRONG_NUMBER = "wrong_number"


SYNONYMS: dict[Intent, tuple[str, ...]] = {
    Intent.POINTS: (
        "积分",
        "jf",
        "查积分",
        "积分余额",
        "积分查询",
        "我的积分",
        "points",
        "balance",
    ),
    Intent.STOCK: ("库存", "kc", "有货", "有没有货", "还有货", "到货", "缺货", "补货", "stock"),
    Intent.BOOKING: ("预约", "预定", "预订", "订位", "预約", "book", "booking", "appointment"),
    Intent.DELIVERY: ("送货", "配送", "送上门", "外送", "送到家", "delivery", "deliver"),
    Intent.COUPON: (
        "优惠券",
        "券码",
        "优惠码",
        "代金券",
        "没收到券",
        "券没收到",
        "coupon",
        "voucher",
    ),
    Intent.COMPLAINT: (
        "投诉",
        "骚扰",
        "举报",
        "315",
        "12315",
        "12321",
        "工信部",
        "垃圾短信",
        "诈骗",
        "欺诈",
        "曝光",
        "报警",
        "起诉",
        "维权",
        "complaint",
        "complain",
        "spam",
        "harass",
        "scam",
    ),
    Intent.HUMAN: ("人工", "转人工", "客服", "真人", "店长", "经理", "回电", "agent"),
    Intent.HOURS: (
        "营业时间",
        "几点开门",
        "几点关门",
        "开门时间",
        "关门时间",
        "营业到几点",
        "hours",
    ),
    Intent.THANKS: ("谢谢", "好的", "收到", "知道了", "感谢", "thanks", "thank", "ok", "okay"),
    Intent.WRONG_NUMBER: ("打错", "发错", "不是我", "不是会员", "不认识", "wrong number"),
}
EXACT_CONFIDENCE = 0.95  # a listed word is in the reply
MIXED_PENALTY = 0.25  # taken off when words of another intent are there too
FUZZY_CUTOFF = 70  # rapidfuzz ratio (0-100) below which a word is no match at all
FUZZY_SCALE = 0.9  # a fuzzy match is never as sure as an exact one
FUZZY_PHRASE_MIN_CHARS = 4  # a shorter reply sits inside too many phrases ("1" in "315")
FUZZY_PHRASE_CHARS = 30  # replies up to this long are also searched for misspelt phrases
PHRASE_CUTOFF = 60  # one wrong character in a four-character phrase still counts
PHRASE_SCALE = 0.9  # a phrase found inside a reply is less sure than a word matched whole


_QUESTION = re.compile(r"[?？吗么几哪]|什么|怎么|何时|多久|\bwhen\b|\bwhy\b|\bwhere\b")


@dataclass(frozen=True, slots=True)
class Guess:
    """The intent picked (None when nothing matched), its confidence 0-1, and the runners-up."""

    intent: Intent | None
    confidence: float
    ranked: tuple[tuple[Intent, float], ...] = ()


class IntentClassifier:
    """Picks the intent of a reply from the shipped word lists plus a brand's own."""

    def __init__(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        words: dict[str, Intent] = {}
        for intent, listed in SYNONYMS.items():
            for word in listed:
                words[compact(word)] = intent
        for name, extra_words in (extra or {}).items():
            for word in extra_words:
                words[compact(word)] = Intent(name)
        self._words = words
        self._choices = list(words)
        # Phrases long enough to be looked for, misspelt, across jieba's word boundaries.
        self._phrases = [word for word in words if len(word) >= 3]
        self._automaton: Any = ahocorasick.Automaton()
        for word, intent in words.items():
            self._automaton.add_word(word, (word, intent))
        self._automaton.make_automaton()

    def classify(self, text: str) -> Guess:
        """The intent of `text`, or Guess(None, 0) for a reply that matches nothing."""
        folded = compact(text)
        if not folded:
            return Guess(None, 0.0)
        scores = self._exact(folded) or self._fuzzy(text)
        if _QUESTION.search(fold(text)):
            # "什么时候能收到?" is a question, not a thank-you.
            scores.pop(Intent.THANKS, None)
        if not scores:
            return Guess(None, 0.0)
        ranked = tuple(sorted(scores.items(), key=lambda item: (-item[1], item[0].value)))
        if Intent.COMPLAINT in scores:
            return Guess(Intent.COMPLAINT, scores[Intent.COMPLAINT], ranked)
        intent, confidence = ranked[0]
        if len(ranked) > 1 and ranked[1][1] >= confidence - 0.05:
            confidence -= MIXED_PENALTY
        return Guess(intent, max(confidence, 0.0), ranked)

    def _exact(self, folded: str) -> dict[Intent, float]:
        covered: dict[Intent, int] = {}
        for _end, (word, intent) in self._automaton.iter(folded):
            covered[intent] = max(covered.get(intent, 0), len(word))
        if not covered:
            return {}
        longest = max(covered.values())
        # A longer word says more: 没收到券 (coupon) over 收到 (thanks).
        return {
            intent: EXACT_CONFIDENCE * (1.0 if length == longest else 0.8)
            for intent, length in covered.items()
        }

    def _fuzzy(self, text: str) -> dict[Intent, float]:
        scores: dict[Intent, float] = {}
        for word in _segment(fold(text)):
            if len(word) < 2 or not word.strip():
                continue
            found = process.extractOne(
                word, self._choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF
            )
            if found is None:
                continue
            intent = self._words[found[0]]
            score = found[1] / 100 * FUZZY_SCALE
            scores[intent] = max(scores.get(intent, 0.0), score)
        folded = compact(text)
        if FUZZY_PHRASE_MIN_CHARS <= len(folded) <= FUZZY_PHRASE_CHARS and not folded.isdigit():
            found = process.extractOne(
                folded, self._phrases, scorer=fuzz.partial_ratio, score_cutoff=PHRASE_CUTOFF
            )
            if found is not None:
                intent = self._words[found[0]]
                score = found[1] / 100 * FUZZY_SCALE * PHRASE_SCALE
                scores[intent] = max(scores.get(intent, 0.0), score)
        return scores


_jieba_lock = threading.Lock()


def load_word_cutter() -> None:
    """Loads jieba's dictionary (it ships in the wheel), which takes a second or two: a
    dispatcher does it before it sends, rather than stall its sends at the first reply."""
    import jieba

    with _jieba_lock:
        if not jieba.dt.initialized:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()


def _segment(text: str) -> list[str]:
    """Words of `text` by jieba."""
    import jieba

    load_word_cutter()
    return [word.strip() for word in jieba.lcut(text) if word.strip()]


@lru_cache(maxsize=8)
def _classifier(extra: tuple[tuple[str, tuple[str, ...]], ...]) -> IntentClassifier:
    return IntentClassifier(dict(extra))


def classifier_for(extra: Mapping[str, Sequence[str]]) -> IntentClassifier:
    """The classifier with a brand's extra words, built once per set of words."""
    key = tuple(sorted((name, tuple(words)) for name, words in extra.items()))
    return _classifier(key)
