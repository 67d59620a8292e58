"""How long a message is, how it is encoded, how many parts it takes and what it costs.

Two counting schemes exist. The SMS standard (`STANDARD`, "gsm") sends GSM-7 when every
character is in the GSM 03.38 alphabet (the extension table's characters take two septets,
an escape and the character) and UCS-2 otherwise (UTF-16 code units, so an emoji takes two);
one part holds 160 septets or 70 units, a part of a longer message 153 septets or 67 units,
and a part never ends between an escape and its character or between the halves of a
surrogate pair. Mainland providers (`MAINLAND`, "mainland") count every character as one,
signature included: 70 for one message, 67 per part beyond, at most 500 characters.

`measure_text` answers for one text; `measure` answers for a Polars Series of texts with
expressions, and falls back to the exact split only for the few texts whose part count the
no-split rule could change. Given the values a template was filled with (`render_filled`), it
counts the template's literal text once and per text only the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from tidings.config import get_settings
from tidings.content.render import Filled

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
GSM_CHARACTERS = frozenset(GSM_BASIC + GSM_EXTENSION)
ASTRAL_START = 0x10000  # first code point that UTF-16 writes as a surrogate pair


def char_class(chars: str, *, negate: bool = False) -> str:
    """Returns a regex character class of `chars` that Python's re and Polars read alike."""
    special = set("\\]-[^&~")
    body = "".join(f"\\{c}" if c in special else c for c in chars)
    return f"[{'^' if negate else ''}{body}]"


NOT_GSM_PATTERN = char_class(GSM_BASIC + GSM_EXTENSION, negate=True)
EXTENSION_PATTERN = char_class(GSM_EXTENSION)
ASTRAL_PATTERN = "[\U00010000-\U0010ffff]"


class Encoding(StrEnum):
    """The alphabet a message travels in."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class PartLimits:
    """Units one message may hold alone, and units per part of a longer message."""

    single: int
    multi: int


@dataclass(frozen=True)
class CountingScheme:
    """How a provider counts length and parts."""

    name: str
    gsm: PartLimits
    ucs2: PartLimits
    per_character: bool  # every character counts one unit, whatever the encoding
    max_units: int | None  # longest message the provider accepts, in units

    def limits(self, encoding: Encoding) -> PartLimits:
        """Returns the part limits for `encoding`."""
        return self.gsm if encoding is Encoding.GSM7 else self.ucs2


STANDARD = CountingScheme(
    name="gsm",
    gsm=PartLimits(single=160, multi=153),  # septets
    ucs2=PartLimits(single=70, multi=67),  # UTF-16 code units
    per_character=False,
    max_units=None,
)
MAINLAND = CountingScheme(
    name="mainland",
    gsm=PartLimits(single=70, multi=67),  # characters
    ucs2=PartLimits(single=70, multi=67),  # characters
    per_character=True,
    max_units=500,  # characters
)
SCHEMES = {scheme.name: scheme for scheme in (STANDARD, MAINLAND)}


class UnknownSchemeError(ValueError):
    """A counting scheme name that does not exist."""


def scheme_named(name: str) -> CountingScheme:
    """Returns the counting scheme called `name` ("gsm" or "mainland")."""
    try:
        return SCHEMES[name]
    except KeyError:
        known = ", ".join(sorted(SCHEMES))
        raise UnknownSchemeError(f"unknown counting scheme '{name}'; use one of {known}") from None


@dataclass(frozen=True)
class Measurement:
    """Encoding, length, parts and cost of one text."""

    encoding: Encoding
    units: int
    segments: int
    cost_cents: int


def encoding_of(text: str) -> Encoding:
    """Returns GSM-7 when every character of `text` fits that alphabet, else UCS-2."""
    return Encoding.GSM7 if GSM_CHARACTERS.issuperset(text) else Encoding.UCS2


def _char_units(char: str, *, encoding: Encoding, scheme: CountingScheme) -> int:
    if scheme.per_character:
        return 1
    if encoding is Encoding.GSM7:
        return 2 if char in GSM_EXTENSION else 1
    return 2 if ord(char) >= ASTRAL_START else 1


def units_of(text: str, *, scheme: CountingScheme = STANDARD) -> int:
    """Returns the length of `text` in the scheme's units (septets, UTF-16 units, characters)."""
    encoding = encoding_of(text)
    return sum(_char_units(c, encoding=encoding, scheme=scheme) for c in text)


def split_parts(text: str, *, scheme: CountingScheme = STANDARD) -> list[str]:
    """Splits `text` into the parts it is sent as; an empty text has no parts."""
    encoding = encoding_of(text)
    limits = scheme.limits(encoding)
    if units_of(text, scheme=scheme) <= limits.single:
        return [text] if text else []
    parts: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(text):
        size = _char_units(char, encoding=encoding, scheme=scheme)
        # A two-unit character that would straddle the boundary opens the next part whole.
        if used + size > limits.multi:
            parts.append(text[start:index])
            start, used = index, 0
        used += size
    parts.append(text[start:])
    return parts


def _price(price_per_part_cents: int | None) -> int:
    if price_per_part_cents is None:
        return get_settings().price_per_part_cents
    return price_per_part_cents


def measure_text(
    text: str, *, scheme: CountingScheme = STANDARD, price_per_part_cents: int | None = None
) -> Measurement:
    """Measures one text: encoding, units, parts and cost (price from settings unless given)."""
    segments = len(split_parts(text, scheme=scheme))
    return Measurement(
        encoding=encoding_of(text),
        units=units_of(text, scheme=scheme),
        segments=segments,
        cost_cents=segments * _price(price_per_part_cents),
    )


def _naive_segments(units: pl.Expr, limits: PartLimits) -> pl.Expr:
    return (
        pl.when(units == 0)
        .then(0)
        .when(units <= limits.single)
        .then(1)
        .otherwise((units + (limits.multi - 1)) // limits.multi)
    )


def _text_counts(text: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """Characters, whether all are GSM-7, extension characters and astral ones, per text."""
    return (
        text.str.len_chars().cast(pl.Int64),
        ~text.str.contains(NOT_GSM_PATTERN),
        text.str.count_matches(EXTENSION_PATTERN).cast(pl.Int64),
        text.str.count_matches(ASTRAL_PATTERN).cast(pl.Int64),
    )


def _filled_counts(filled: Filled) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """The same counts from the template's literal text (counted once) and each value."""
    literal = filled.template.literal_text
    chars: pl.Expr = pl.lit(len(literal), dtype=pl.Int64)
    is_gsm: pl.Expr = pl.lit(encoding_of(literal) is Encoding.GSM7)
    extension: pl.Expr = pl.lit(sum(c in GSM_EXTENSION for c in literal), dtype=pl.Int64)
    astral: pl.Expr = pl.lit(sum(ord(c) >= ASTRAL_START for c in literal), dtype=pl.Int64)
    for name in filled.values.columns:
        value_chars, value_gsm, value_extension, value_astral = _text_counts(pl.col(name))
        chars, is_gsm = chars + value_chars, is_gsm & value_gsm
        extension, astral = extension + value_extension, astral + value_astral
    return chars, is_gsm, extension, astral


def measure(
    texts: pl.Series,
    *,
    scheme: CountingScheme = STANDARD,
    price_per_part_cents: int | None = None,
    filled: Filled | None = None,
) -> pl.DataFrame:
    """Measures many texts: a frame of encoding, units, segments, cost_cents (nulls stay null).

    With `filled` (from `render_filled`, for these texts), the template's literal text is
    counted once and only the values per text.
    """
    price = _price(price_per_part_cents)
    text = pl.col("text")
    frame = pl.DataFrame({"text": texts.cast(pl.String)})
    if filled is None:
        chars, is_gsm, extension, astral = _text_counts(text)
    else:
        frame = frame.hstack(filled.values_for(texts))
        chars, is_gsm, extension, astral = _filled_counts(filled)
    present = text.is_not_null()
    doubled = pl.when(is_gsm).then(extension).otherwise(astral)
    units = pl.when(present).then(chars if scheme.per_character else chars + doubled)
    gsm_segments, ucs2_segments = (_naive_segments(units, lim) for lim in (scheme.gsm, scheme.ucs2))
    naive = pl.when(is_gsm).then(gsm_segments).otherwise(ucs2_segments)
    multi = pl.when(is_gsm).then(scheme.gsm.multi).otherwise(scheme.ucs2.multi)
    # Greedy parts hold at least `multi - 1` units each but the last, so the no-split rule can
    # add a part only when the units exceed `naive * (multi - 1)` and a two-unit character exists.
    near_boundary = (doubled > 0) & (naive > 1) & (units > naive * (multi - 1))
    if scheme.per_character:
        near_boundary = pl.lit(False)
    # Lazily, so that units and part counts are computed once however often they are used.
    frame = (
        frame.lazy()
        .select(
            encoding=pl.when(~present)
            .then(None)
            .when(is_gsm)
            .then(pl.lit(Encoding.GSM7.value))
            .otherwise(pl.lit(Encoding.UCS2.value)),
            units=units,
            segments=naive,
            near=near_boundary.fill_null(False),
        )
        .collect()
    )
    segments = frame["segments"]
    rows = frame.with_row_index().filter(pl.col("near"))["index"]
    if len(rows):
        exact = [len(split_parts(t, scheme=scheme)) for t in texts.gather(rows).to_list()]
        segments = segments.scatter(rows, exact)
    return frame.select("encoding", "units", segments=segments, cost_cents=segments * price)
