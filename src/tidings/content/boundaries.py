"""Per-member texts that hold only what can differ between members' messages.

A campaign's messages share the template's literal text; only the filled-in values differ.
A word or a link that lies wholly inside the literal text is the same in every message, so it
is looked for once. What can differ is found in the values and in the literal text next to
them, where a term or a link may run across a boundary: these texts keep the values whole and
of each literal stretch only its edges, so that a check over millions of messages reads a few
characters per member instead of the whole text.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from tidings.content.render import Filled, value_column
from tidings.content.template import Literal, Template

# What a link is made of (printable ASCII); anything else ends a link.
LINK_CHARS = frozenset(chr(code) for code in range(0x21, 0x7F))
_LINK_CHARS = "".join(sorted(LINK_CHARS))
LINK_BREAK = " "  # stands for literal text that cannot be part of a link
PLACEHOLDER_MARK = "\ufffc"  # stands for a value in the literal-only text

Piece = str | int  # literal text, or the index of a placeholder


def merged_pieces(template: Template) -> list[Piece]:
    """The template's pieces with adjacent literals joined: texts and placeholder indices."""
    pieces: list[Piece] = []
    index = 0
    for piece in template.pieces:
        if isinstance(piece, Literal):
            if pieces and isinstance(pieces[-1], str):
                pieces[-1] += piece.text
            else:
                pieces.append(piece.text)
        else:
            pieces.append(index)
            index += 1
    return pieces


def literal_stretches(template: Template) -> list[str]:
    """The stretches of literal text between placeholders, in order."""
    return [piece for piece in merged_pieces(template) if isinstance(piece, str)]


def literal_only_text(template: Template) -> str:
    """The template's text with each value replaced by a mark no term or link contains."""
    return "".join(
        piece if isinstance(piece, str) else PLACEHOLDER_MARK for piece in merged_pieces(template)
    )


def _next_to_values(template: Template) -> list[tuple[Piece, bool, bool]]:
    """Each piece, and whether a value comes right before it and right after it."""
    pieces = merged_pieces(template)
    return [(piece, index > 0, index < len(pieces) - 1) for index, piece in enumerate(pieces)]


def windowed_text(
    filled: Filled,
    *,
    width: int,
    separator: str,
    literal: Callable[[str], str] = lambda text: text,
    value: Callable[[pl.Expr], pl.Expr] = lambda expr: expr,
) -> pl.Expr:
    """Each member's values with `width` characters of literal text either side of them.

    `literal` and `value` transform the pieces first (for example, normalise them). A term of
    at most `width + 1` characters, after that transformation, that touches a value lies whole
    in this text; `separator`, which must occur in no term, stands where a stretch of literal
    text is cut in two, so that no term is found across the cut.
    """
    parts: list[pl.Expr] = []
    for piece, after_value, before_value in _next_to_values(filled.template):
        if isinstance(piece, int):
            parts.append(value(pl.col(value_column(piece))))
            continue
        text = literal(piece)
        head = text[:width] if after_value else ""
        tail = text[max(len(text) - width, 0) :] if before_value and width else ""
        if not (after_value and before_value and len(text) <= 2 * width):
            text = head + (separator if head and tail else "") + tail
        parts.append(pl.lit(text, dtype=pl.String))
    return pl.concat_str(parts, ignore_nulls=False) if parts else pl.lit("", dtype=pl.String)


def _link_edges(text: str, *, after_value: bool, before_value: bool) -> str:
    """A literal stretch as links see it: the runs of link characters it shares with values."""
    if LINK_CHARS.issuperset(text):
        return text if after_value or before_value else ""
    head = text[: len(text) - len(text.lstrip(_LINK_CHARS))] if after_value else ""
    tail = text[len(text.rstrip(_LINK_CHARS)) :] if before_value else ""
    return head + LINK_BREAK + tail


def link_edges_text(filled: Filled) -> pl.Expr:
    """Each member's values with the link characters that run on from them into literal text.

    A link that touches a value is a run of link characters through it, so it lies whole in
    this text; a link wholly inside the literal text is in `literal_only_text`.
    """
    parts = [
        pl.col(value_column(piece))
        if isinstance(piece, int)
        else pl.lit(_link_edges(piece, after_value=after, before_value=before), dtype=pl.String)
        for piece, after, before in _next_to_values(filled.template)
    ]
    return pl.concat_str(parts, ignore_nulls=False) if parts else pl.lit("", dtype=pl.String)
