"""Findings about what a message says: absolute terms, sensitive words and structural faults.

`lint_text` lists every finding in one text with its position. `lint_template` does the
same for a framed template's shared text, once per campaign. `lint_messages` decides for
millions of rendered texts which must not be sent, with Polars expressions only (the
normalised text, Polars' own Aho-Corasick, regexes), and gives each blocked message the same
reason `blocking_reason(lint_text(...))` would. Given the values a template was filled with
(`render_filled`), it looks at the template's literal text once and per message only at the
values and the literal text next to them (`boundaries.py`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from tidings.config import get_settings
from tidings.content.boundaries import link_edges_text, literal_only_text
from tidings.content.length import STANDARD, CountingScheme, measure, measure_text
from tidings.content.render import Filled
from tidings.content.template import Literal, MessageKind, Template, signature_of
from tidings.content.words import (
    WordKind,
    WordMatcher,
    normalize_term,
    sensitive_terms,
    word_matcher,
)


class Severity(StrEnum):
    """An error blocks a send; a warning asks the operator to look again."""

    ERROR = "error"
    WARNING = "warning"


class FindingCode(StrEnum):
    """What kind of fault a finding is; errors listed in the order they explain a skip."""

    SENSITIVE_WORD = "sensitive_word"
    UNRESOLVED_PLACEHOLDER = "unresolved_placeholder"
    FOREIGN_LINK = "foreign_link"
    MISSING_SIGNATURE = "missing_signature"
    MISSING_OPT_OUT = "missing_opt_out"
    TOO_LONG = "too_long"
    TOO_MANY_PARTS = "too_many_parts"
    ABSOLUTE_TERM = "absolute_term"


SEVERITIES = {code: Severity.ERROR for code in FindingCode} | {
    FindingCode.ABSOLUTE_TERM: Severity.WARNING
}
MESSAGES = {
    FindingCode.ABSOLUTE_TERM: "'{term}' is an absolute term the advertising law forbids; {hint}",
    FindingCode.SENSITIVE_WORD: "'{term}' is on the sensitive-word list; a message with it is "
    "not sent. Remove it",
    FindingCode.UNRESOLVED_PLACEHOLDER: "'{term}' looks like a placeholder left unfilled; "
    "check the template's field names",
    FindingCode.FOREIGN_LINK: "link '{term}' is not on the brand's short-link domain {hint}; "
    "use a short link so clicks are tracked and carriers accept it",
    FindingCode.MISSING_SIGNATURE: "the brand signature {term} is missing; carriers reject "
    "unsigned messages",
    FindingCode.MISSING_OPT_OUT: "marketing must tell members how to opt out; add '{term}'",
    FindingCode.TOO_LONG: "{term}; the provider accepts at most {hint}. Shorten the message",
    FindingCode.TOO_MANY_PARTS: "{term}; the brand allows at most {hint}. Shorten the message",
}
PLACEHOLDER_PATTERN = r"\{[^{}]*\}"
LINK_PATTERN = (
    r"(?:[Hh][Tt][Tt][Pp][Ss]?://)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?::[0-9]{1,5})?(?:/[!-~]*)?"
)
SCHEME_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"
# A dotted word is a link when it has a scheme, a path, starts with www. or ends in one of these.
LINK_TLDS = frozenset(
    [
        "com",
        "cn",
        "net",
        "org",
        "cc",
        "co",
        "io",
        "me",
        "top",
        "vip",
        "xyz",
        "shop",
        "info",
        "biz",
        "link",
        "club",
        "site",
        "online",
        "store",
        "tv",
        "hk",
        "tw",
        "app",
        "wang",
        "ink",
        "fun",
        "icu",
        "live",
        "xin",
        "mobi",
        "asia",
    ]
)
_PLACEHOLDER = re.compile(PLACEHOLDER_PATTERN)
_LINK = re.compile(LINK_PATTERN)
_SCHEME = re.compile(SCHEME_PATTERN)


@dataclass(frozen=True)
class Finding:
    """One fault in a text, at [start, end) of it."""

    code: FindingCode
    severity: Severity
    start: int
    end: int
    term: str
    message: str

    def as_dict(self) -> dict[str, object]:
        """Returns the finding as the JSON the CLI and API print."""
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}


def _finding(code: FindingCode, *, start: int, end: int, term: str, hint: str = "") -> Finding:
    message = MESSAGES[code].format(term=term, hint=hint)
    return Finding(code, SEVERITIES[code], start, end, term, message)


def link_host(link: str) -> str:
    """Returns the lower-case host of a link found in a text."""
    rest = _SCHEME.sub("", link)
    return re.split(r"[/:]", rest, maxsplit=1)[0].lower()


def _is_link(candidate: str) -> bool:
    host = link_host(candidate)
    return (
        _SCHEME.match(candidate) is not None
        or "/" in _SCHEME.sub("", candidate)
        or host.startswith("www.")
        or host.rsplit(".", 1)[-1] in LINK_TLDS
    )


def _is_brand_host(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _word_findings(text: str, matcher: WordMatcher) -> list[Finding]:
    findings = []
    for match in matcher.find(text):
        code = (
            FindingCode.SENSITIVE_WORD
            if match.term.kind is WordKind.SENSITIVE
            else FindingCode.ABSOLUTE_TERM
        )
        hint = match.term.suggestion or "state the fact instead"
        findings.append(
            _finding(code, start=match.start, end=match.end, term=match.term.term, hint=hint)
        )
    return findings


def _link_findings(text: str, *, domains: tuple[str, ...]) -> list[Finding]:
    hint = domains[0]
    return [
        _finding(FindingCode.FOREIGN_LINK, start=m.start(), end=m.end(), term=m[0], hint=hint)
        for m in _LINK.finditer(text)
        if _is_link(m[0]) and not _is_brand_host(link_host(m[0]), domains)
    ]


def _length_findings(text: str, *, scheme: CountingScheme, max_parts: int) -> list[Finding]:
    measured = measure_text(text, scheme=scheme, price_per_part_cents=0)
    findings = []
    if scheme.max_units is not None and measured.units > scheme.max_units:
        term = f"{measured.units} characters"
        hint = f"{scheme.max_units} characters"
        findings.append(
            _finding(FindingCode.TOO_LONG, start=0, end=len(text), term=term, hint=hint)
        )
    if measured.segments > max_parts:
        term = f"{measured.segments} parts"
        findings.append(
            _finding(
                FindingCode.TOO_MANY_PARTS, start=0, end=len(text), term=term, hint=f"{max_parts}"
            )
        )
    return findings


@dataclass(frozen=True)
class LintRules:
    """What a message is checked against; `lint_rules` fills it from the settings."""

    kind: MessageKind
    signature: str
    opt_out_text: str
    short_link_domain: str
    max_parts: int
    scheme: CountingScheme
    matcher: WordMatcher
    short_link_host: str | None = None  # where this service serves its short links

    @property
    def link_domains(self) -> tuple[str, ...]:
        """The brand's link domains: its own and its short links' host."""
        hosts = (self.short_link_domain, self.short_link_host or self.short_link_domain)
        return tuple(dict.fromkeys(hosts))


def lint_rules(
    *,
    kind: MessageKind = MessageKind.MARKETING,
    brand_name: str | None = None,
    opt_out_text: str | None = None,
    scheme: CountingScheme = STANDARD,
    sensitive_words_file: Path | None = None,
) -> LintRules:
    """Returns the rules for `kind` from the settings, with any of them overridden."""
    settings = get_settings()
    return LintRules(
        kind=kind,
        signature=signature_of(brand_name or settings.brand_name),
        opt_out_text=opt_out_text or settings.opt_out_text,
        short_link_domain=settings.short_link_domain.lower(),
        max_parts=settings.max_message_parts,
        scheme=scheme,
        matcher=word_matcher(sensitive_words_file=sensitive_words_file),
        short_link_host=urlsplit(settings.short_link_base).hostname,
    )


def _presence_findings(text: str, rules: LintRules) -> list[Finding]:
    findings = []
    if rules.signature not in text:
        findings.append(
            _finding(FindingCode.MISSING_SIGNATURE, start=0, end=0, term=rules.signature)
        )
    if rules.kind is MessageKind.MARKETING and rules.opt_out_text not in text:
        end = len(text)
        term = rules.opt_out_text
        findings.append(_finding(FindingCode.MISSING_OPT_OUT, start=end, end=end, term=term))
    return findings


def lint_text(text: str, *, rules: LintRules) -> list[Finding]:
    """Returns every finding in `text`, ordered by position."""
    findings = _word_findings(text, rules.matcher)
    findings += [
        _finding(FindingCode.UNRESOLVED_PLACEHOLDER, start=m.start(), end=m.end(), term=m[0])
        for m in _PLACEHOLDER.finditer(text)
    ]
    findings += _link_findings(text, domains=rules.link_domains)
    findings += _presence_findings(text, rules)
    findings += _length_findings(text, scheme=rules.scheme, max_parts=rules.max_parts)
    return sorted(findings, key=lambda f: (f.start, f.end, list(FindingCode).index(f.code)))


def blocking_reason(findings: list[Finding], *, rules: LintRules) -> str | None:
    """Returns why these findings stop a send (`code` or `code:term`), or None if they do not."""
    errors = [f for f in findings if f.severity is Severity.ERROR]
    for code in FindingCode:
        chosen = [f for f in errors if f.code is code]
        if not chosen:
            continue
        if code is FindingCode.SENSITIVE_WORD:
            # The longest term, then the first in code-point order: what the bulk path picks.
            key = min((normalize_term(f.term) for f in chosen), key=lambda k: (-len(k), k))
            return f"{code}:{rules.matcher.sensitive_shown[key]}"
        if code in (FindingCode.UNRESOLVED_PLACEHOLDER, FindingCode.FOREIGN_LINK):
            return f"{code}:{chosen[0].term}"
        return str(code)
    return None


def _source_offsets(template: Template) -> list[int]:
    """Per character of the template's shared text, its offset in the template's source."""
    offsets: list[int] = []
    for piece in template.pieces:
        if not isinstance(piece, Literal):
            offsets.append(piece.position)
            continue
        at = piece.position
        for char in piece.text:
            offsets.append(at)
            at += 2 if char in "{}" else 1  # a literal brace is written twice
    offsets.append(len(template.source))
    return offsets


def lint_template(template: Template, *, rules: LintRules) -> list[Finding]:
    """Returns the findings in a framed template's own text (positions in its source)."""
    # Placeholders become a character no term contains, so no match spans a placeholder.
    text = "".join(p.text if isinstance(p, Literal) else "\ufffc" for p in template.pieces)
    offsets = _source_offsets(template)
    findings = _word_findings(text, rules.matcher)
    findings += _link_findings(text, domains=rules.link_domains)
    findings += _presence_findings(text, rules)
    return [
        Finding(f.code, f.severity, offsets[f.start], offsets[f.end], f.term, f.message)
        for f in sorted(findings, key=lambda f: (f.start, f.end))
    ]


def _foreign_link_expr(text: pl.Expr, *, domains: tuple[str, ...]) -> pl.Expr:
    """The first link in each text that is not on the brand's domain, or null."""
    link = pl.element()
    bare = link.str.replace(SCHEME_PATTERN, "")
    host = bare.str.extract(r"^([^/:]+)", 1).str.to_lowercase()
    is_link = (
        link.str.contains(SCHEME_PATTERN)
        | bare.str.contains("/", literal=True)
        | host.str.starts_with("www.")
        | host.str.extract(r"([^.]+)$", 1).is_in(sorted(LINK_TLDS))
    )
    foreign = ~pl.any_horizontal(
        [(host == domain) | host.str.ends_with("." + domain) for domain in domains]
    )
    return text.str.extract_all(LINK_PATTERN).list.eval(link.filter(is_link & foreign)).list.first()


def _dotted_beyond_brand(text: pl.Expr, *, domains: tuple[str, ...]) -> pl.Expr:
    """Whether a text has a dotted word besides links on the brand's domain (a cheap filter)."""
    host_char = "A-Za-z0-9.-"
    domain = "|".join(re.escape(domain) for domain in domains)
    brand = f"(?:^|[^{host_char}])(?:[A-Za-z0-9-]+\\.)*(?:{domain})(?:[^{host_char}]|$)"
    return text.str.replace_all(brand, " ").str.contains(r"[A-Za-z0-9-]\.[A-Za-z]")


def _link_suspects(
    frame: pl.DataFrame, *, domains: tuple[str, ...], filled: Filled | None
) -> pl.Series:
    """Whether each text may hold a link off the brand's domain (the exact check follows)."""
    if filled is None:
        suspect = _dotted_beyond_brand(pl.col("text"), domains=domains)
    elif _link_findings(literal_only_text(filled.template), domains=domains):
        suspect = pl.lit(True)
    else:
        suspect = _dotted_beyond_brand(link_edges_text(filled), domains=domains)
    # with_columns, so that a text without placeholders still gives one answer per row.
    return frame.with_columns(suspect=suspect.fill_null(False))["suspect"]


def lint_messages(
    texts: pl.Series,
    *,
    rules: LintRules,
    measured: pl.DataFrame | None = None,
    filled: Filled | None = None,
) -> pl.Series:
    """Returns, per text, why it must not be sent (`code` or `code:term`) or null.

    `measured` is `measure(texts, scheme=rules.scheme)` when the caller already has it.
    With `filled` (from `render_filled`, for these texts), words and links are looked for
    once in the template's literal text and per text only around the values.
    """
    texts = texts.cast(pl.String).rename("text")
    if measured is None:
        measured = measure(texts, scheme=rules.scheme, price_per_part_cents=0, filled=filled)
    text = pl.col("text")
    frame = pl.DataFrame({"text": texts, "units": measured["units"], "parts": measured["segments"]})
    if filled is not None:
        frame = frame.hstack(filled.values_for(texts))
    sensitive = sensitive_terms(frame, matcher=rules.matcher, filled=filled)
    frame = frame.with_row_index()
    marketing = rules.kind is MessageKind.MARKETING
    max_units = rules.scheme.max_units
    placeholder = text.str.extract(f"({PLACEHOLDER_PATTERN})", 1)
    # Only texts with a dotted word left once the brand's own links are blanked can hold a
    # foreign link; the exact check runs on those alone.
    frame = frame.with_columns(
        dotted=_link_suspects(frame, domains=rules.link_domains, filled=filled)
    )
    suspects = frame.filter(pl.col("dotted"))
    link = pl.Series("link", [None] * len(frame), dtype=pl.String).scatter(
        suspects["index"],
        suspects.select(_foreign_link_expr(text, domains=rules.link_domains)).to_series(),
    )
    reasons = [
        pl.concat_str(pl.lit(f"{FindingCode.SENSITIVE_WORD}:"), pl.lit(sensitive)),
        pl.concat_str(pl.lit(f"{FindingCode.UNRESOLVED_PLACEHOLDER}:"), placeholder),
        pl.concat_str(pl.lit(f"{FindingCode.FOREIGN_LINK}:"), pl.lit(link)),
        pl.when(~text.str.contains(rules.signature, literal=True)).then(
            pl.lit(str(FindingCode.MISSING_SIGNATURE))
        ),
        pl.when(pl.lit(marketing) & ~text.str.contains(rules.opt_out_text, literal=True)).then(
            pl.lit(str(FindingCode.MISSING_OPT_OUT))
        ),
        pl.when(pl.lit(max_units is not None) & (pl.col("units") > (max_units or 0))).then(
            pl.lit(str(FindingCode.TOO_LONG))
        ),
        pl.when(pl.col("parts") > rules.max_parts).then(pl.lit(str(FindingCode.TOO_MANY_PARTS))),
    ]
    reason = pl.when(text.is_not_null()).then(pl.coalesce(reasons))
    return frame.select(lint_error=reason).to_series()
