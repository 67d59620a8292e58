"""Findings: absolute terms, sensitive words however disguised, structural faults, bulk reasons."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.config import get_settings
from tidings.content.length import MAINLAND
from tidings.content.lint import (
    FindingCode,
    Severity,
    blocking_reason,
    lint_messages,
    lint_rules,
    lint_template,
    lint_text,
)
from tidings.content.template import MessageKind, prepare_template
from tidings.content.words import WordListError

SIGNED = "【好邻居】{} 拒收请回复R"


@pytest.fixture
def rules():
    return lint_rules(brand_name="好邻居")


def codes(findings) -> list[str]:
    return [str(f.code) for f in findings]


def test_absolute_terms_are_warnings_with_position_and_suggestion(rules) -> None:
    text = SIGNED.format("本店最佳选择，全网第一")
    findings = lint_text(text, rules=rules)
    assert codes(findings) == ["absolute_term", "absolute_term"]
    best, first = findings
    assert text[best.start : best.end] == "最佳" and best.severity is Severity.WARNING
    assert "'最佳' is an absolute term the advertising law forbids; say '优质'" in best.message
    assert first.term == "全网第一"


def test_ordinal_phrases_are_not_claims(rules) -> None:
    assert lint_text(SIGNED.format("第一次来店享9折"), rules=rules) == []


@pytest.mark.parametrize("disguised", ["刷单", "刷 单", "刷*单", "刷😀单", "刷　单"])
def test_sensitive_words_are_found_through_spaces_and_symbols(rules, disguised: str) -> None:
    text = SIGNED.format(f"帮忙{disguised}有奖")
    (finding,) = lint_text(text, rules=rules)
    assert finding.code is FindingCode.SENSITIVE_WORD and finding.severity is Severity.ERROR
    assert text[finding.start : finding.end] == disguised
    assert finding.term == "刷单"


def test_full_width_and_upper_case_forms_match(rules) -> None:
    text = SIGNED.format("加Ｖ信领取")
    (finding,) = lint_text(text, rules=rules)
    assert text[finding.start : finding.end] == "Ｖ信"
    spaced = SIGNED.format("最 佳")
    assert codes(lint_text(spaced, rules=rules)) == ["absolute_term"]


def test_the_brand_file_adds_sensitive_terms(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("# ours\n竞品超市\n", encoding="utf-8")
    rules = lint_rules(brand_name="好邻居", sensitive_words_file=words)
    (finding,) = lint_text(SIGNED.format("比竞 品超市便宜"), rules=rules)
    assert finding.code is FindingCode.SENSITIVE_WORD and finding.term == "竞品超市"


def test_a_missing_brand_file_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(WordListError, match="TIDINGS_SENSITIVE_WORDS_FILE"):
        lint_rules(sensitive_words_file=tmp_path / "absent.txt")


def test_the_matcher_handles_thousands_of_terms(tmp_path: Path) -> None:
    words = tmp_path / "many.txt"
    words.write_text("\n".join(f"禁词{i:05d}" for i in range(5000)), encoding="utf-8")
    rules = lint_rules(brand_name="好邻居", sensitive_words_file=words)
    (finding,) = lint_text(SIGNED.format("含有禁词04321的文字"), rules=rules)
    assert finding.term == "禁词04321"


def test_marketing_without_signature_or_opt_out_is_an_error(rules) -> None:
    assert codes(lint_text("新品到店", rules=rules)) == ["missing_signature", "missing_opt_out"]
    receipt = lint_rules(brand_name="好邻居", kind=MessageKind.TRANSACTIONAL)
    assert codes(lint_text("新品到店", rules=receipt)) == ["missing_signature"]
    assert lint_text("【好邻居】您的订单已发货", rules=receipt) == []


def test_an_unfilled_placeholder_is_an_error_at_its_position(rules) -> None:
    text = SIGNED.format("{name}您好")
    (finding,) = lint_text(text, rules=rules)
    assert finding.code is FindingCode.UNRESOLVED_PLACEHOLDER
    assert (finding.start, finding.end) == (5, 11)


def test_links_off_the_short_link_domain_are_errors(rules) -> None:
    domain = get_settings().short_link_domain
    ours = SIGNED.format(f"详情 https://{domain}/a1B 或 {domain}/x9")
    assert lint_text(ours, rules=rules) == []
    theirs = SIGNED.format("详情 www.example.com 或 http://shop.example.org/p?id=1 Mr.Li")
    findings = lint_text(theirs, rules=rules)
    assert [f.term for f in findings] == ["www.example.com", "http://shop.example.org/p?id=1"]


def test_too_many_parts_and_too_long_for_the_provider(rules) -> None:
    long_text = SIGNED.format("中" * 250)
    assert codes(lint_text(long_text, rules=rules)) == ["too_many_parts"]
    mainland = lint_rules(brand_name="好邻居", scheme=MAINLAND)
    too_long = lint_text(SIGNED.format("中" * 500), rules=mainland)
    assert codes(too_long) == ["too_long", "too_many_parts"]
    assert "at most 500 characters" in too_long[0].message


def test_template_findings_point_into_the_template_source(rules) -> None:
    template = prepare_template(
        "{name}，最佳{{福利}}见 www.example.com", kind=MessageKind.MARKETING, brand_name="好邻居"
    )
    findings = lint_template(template, rules=rules)
    assert [template.source[f.start : f.end] for f in findings] == ["最佳", "www.example.com"]
    no_match_across = prepare_template(
        "最{name}佳", kind=MessageKind.MARKETING, brand_name="好邻居"
    )
    assert lint_template(no_match_across, rules=rules) == []


def test_bulk_reasons_name_what_blocks_each_message(rules) -> None:
    texts = pl.Series(
        [
            SIGNED.format("你好"),
            SIGNED.format("刷 单返利，刷单"),
            SIGNED.format("{name}"),
            "新品到店",
            SIGNED.format("最佳"),
            None,
            SIGNED.format("见 t.example.cn/a t.example.cn/b"),
            SIGNED.format("见 abct.example.cn/a"),
        ]
    )
    assert lint_messages(texts, rules=rules).to_list() == [
        None,
        "sensitive_word:刷单返利",
        "unresolved_placeholder:{name}",
        "missing_signature",
        None,
        None,
        None,
        "foreign_link:abct.example.cn/a",
    ]


fragments = st.sampled_from(
    [
        "你好",
        "刷单",
        "刷 单返利",
        "博彩",
        "最佳",
        "{name}",
        "www.example.com",
        "t.example.cn/ab",
        "【好邻居】",
        "拒收请回复R",
        "中" * 80,
        "€",
        "😀",
        " ",
    ]
)
texts = st.lists(st.one_of(fragments, st.text(max_size=4)), max_size=8).map("".join)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(texts, min_size=1, max_size=10), kind=st.sampled_from(list(MessageKind)))
def test_bulk_reasons_agree_with_one_by_one_lint(batch: list[str], kind) -> None:
    rules = lint_rules(brand_name="好邻居", kind=kind)
    bulk = lint_messages(pl.Series(batch, dtype=pl.String), rules=rules).to_list()
    assert bulk == [blocking_reason(lint_text(t, rules=rules), rules=rules) for t in batch]
