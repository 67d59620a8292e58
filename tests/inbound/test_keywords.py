"""The keyword detector: never crashes on anything a handset can send, finds a stop word
wrapped in punctuation, emoji and politeness, and leaves negated ones alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidings.config import Settings
from tidings.inbound.keywords import KeywordKind, KeywordRules, detect

RULES = KeywordRules.from_settings(Settings())
STOPS = ["TD", "T", "R", "N", "退订", "拒收", "取消", "STOP", "STOPALL", "UNSUBSCRIBE", "QUIT"]
WRAPPING = st.text(alphabet="  ，。！？!?.,~…、【】()（）🙏😀👍\n", max_size=4)


@given(st.text(max_size=1200))
def test_any_text_gets_an_answer_or_none_and_never_an_error(body: str) -> None:
    found = detect(body, RULES)
    assert found is None or found.kind in KeywordKind


@given(st.sampled_from(STOPS), WRAPPING, WRAPPING, st.booleans(), st.booleans())
def test_a_stop_word_wrapped_in_punctuation_is_a_stop(
    word: str, before: str, after: str, lower: bool, full_width: bool
) -> None:
    if lower:
        word = word.lower()
    if full_width:
        word = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)
    found = detect(before + "请" + word + after, RULES)
    assert found is not None and found.kind is KeywordKind.OPT_OUT


@given(st.sampled_from(["退订", "拒收"]), st.sampled_from(["不要", "别", "不想", "我不"]), WRAPPING)
def test_a_negated_stop_word_is_not_a_stop(word: str, negation: str, after: str) -> None:
    assert detect(negation + word + after, RULES) is None


def test_a_stop_word_inside_a_sentence_counts_but_a_lone_letter_there_does_not() -> None:
    for text in ("你好，我要退订，谢谢", "Please STOP sending these"):
        found = detect(text, RULES)
        assert found is not None and found.kind is KeywordKind.OPT_OUT, text
    assert detect("R U open on Sunday", RULES) is None
    assert detect("取消订单怎么操作", RULES) is None
