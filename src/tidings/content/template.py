"""Message templates: parsed once, checked, framed, then rendered for one member or millions.

Syntax (documented for operators):

- `{field}` inserts a field; `{field|fallback}` uses the fallback text when the member has no
  value (`{name|会员}`); `{field:format}` and `{field:format|fallback}` format it.
- Formats: `,` groups a whole number by thousands (`{points:,}` -> `12,345`); dates show as
  `12月5日` by default or with `md`, as `2025年12月5日` with `ymd`, as `2025-12-05` with `iso`.
- `{{` and `}}` write a literal brace.
- Placeholders name a field of `PLACEHOLDER_COLUMNS` or any column of the audience frame.
  `{surname}` is the salutation 张女士 / 王先生 (compound surnames such as 欧阳 kept whole) from
  `name` and `gender`; `{tier}` shows the tier in Chinese (`gold` -> 金卡会员);
  `{preference_link}` is the member's own signed link to their preference page (`/p/...`).

A member whose field is empty (null or only spaces) and has no fallback gets no text and a
skip reason `missing_field:<field>`, never a message with a hole in it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import StrEnum

from tidings.config import get_settings

# Placeholder -> audience column, for placeholders whose column has another name or that
# the campaign provides per message. Any other audience column is a placeholder as it is.
PLACEHOLDER_COLUMNS = {
    "name": "name",
    "points": "points",
    "store": "store_name",
    "city": "city",
    "top_category": "top_category",
    "birthday": "birthday",
    "coupon": "coupon",
    "link": "link",
    "expiry_date": "expiry_date",
}
# Placeholders computed from other columns.
DERIVED_COLUMNS = {
    "surname": ("name", "gender"),
    "tier": ("tier",),
    "preference_link": ("member_id",),
}
CAMPAIGN_FIELDS = frozenset({"coupon", "link", "expiry_date"})
AUDIENCE_COLUMNS = (
    "member_id",
    "phone",
    "name",
    "gender",
    "birthday",
    "points",
    "tier",
    "store_name",
    "city",
    "top_category",
    "best_hour",
)
TIER_NAMES = {
    "bronze": "铜卡会员",
    "silver": "银卡会员",
    "gold": "金卡会员",
    "platinum": "铂金卡会员",
    "diamond": "钻石卡会员",
}
SALUTATIONS = {"F": "女士", "女": "女士", "M": "先生", "男": "先生"}
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "司空",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "闾丘",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "赫连",
        "澹台",
        "公冶",
        "宗政",
        "濮阳",
        "太叔",
        "申屠",
        "仲孙",
        "鲜于",
        "淳于",
        "单于",
        "万俟",
        "司寇",
        "亓官",
        "羊舌",
        "微生",
        "梁丘",
        "左丘",
        "东郭",
        "第五",
        "拓跋",
        "乐正",
        "壤驷",
        "公良",
        "漆雕",
        "巫马",
        "谷梁",
        "段干",
        "东门",
        "公西",
        "南门",
        "公羊",
        "颛孙",
        "子车",
        "闻人",
        "公输",
        "梁丘",
        "哥舒",
        "完颜",
    ]
)
# Characters a name may start with for a surname to be read from it (CJK ideographs).
HAN_CLASS = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
# What counts as "nothing" in a field; the same set for bulk and single rendering.
BLANK_CHARS = " \t\n\r\f\v\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
BLANK_CHARS += "\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
NUMBER_FORMATS = frozenset({","})
DATE_FORMATS = frozenset({"md", "ymd", "iso"})
DEFAULT_DATE_FORMAT = "md"
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MessageKind(StrEnum):
    """Marketing needs consent and the opt-out text; transactional messages do not."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class TemplateError(ValueError):
    """A template that cannot be used as written; `position` is the 0-based offset in it."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(f"column {position + 1}: {message}")
        self.position = position


@dataclass(frozen=True)
class Literal:
    """Text shown as written."""

    text: str
    position: int


@dataclass(frozen=True)
class Placeholder:
    """A field filled in per member, with its format and fallback."""

    field: str
    format: str | None
    fallback: str | None
    position: int

    @property
    def columns(self) -> tuple[str, ...]:
        """Returns the audience columns this placeholder reads."""
        if self.field in DERIVED_COLUMNS:
            return DERIVED_COLUMNS[self.field]
        return (PLACEHOLDER_COLUMNS.get(self.field, self.field),)


Piece = Literal | Placeholder


@dataclass(frozen=True)
class Template:
    """A parsed template: its source and its pieces in order."""

    source: str
    pieces: tuple[Piece, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Returns the placeholders in order."""
        return tuple(p for p in self.pieces if isinstance(p, Placeholder))

    @property
    def literal_text(self) -> str:
        """Returns the text every member's message shares, placeholders left out."""
        return "".join(p.text for p in self.pieces if isinstance(p, Literal))


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _parse_placeholder(body: str, *, position: int) -> Placeholder:
    head, bar, fallback = body.partition("|")
    field, colon, fmt = head.partition(":")
    if not FIELD_NAME.fullmatch(field):
        shown = "{" + body + "}"
        raise TemplateError(
            f"'{shown}' does not start with a field name (letters, digits and _)",
            position=position,
        )
    if colon and fmt not in NUMBER_FORMATS | DATE_FORMATS:
        raise TemplateError(
            f"unknown format '{fmt}' for '{field}'; use ',' for numbers or md, ymd, iso for dates",
            position=position,
        )
    return Placeholder(
        field=field,
        format=fmt if colon else None,
        fallback=fallback if bar else None,
        position=position,
    )


def _parse_pieces(text: str) -> list[Piece]:
    pieces: list[Piece] = []
    buffer: list[str] = []
    start, index = 0, 0
    while index < len(text):
        char = text[index]
        if char == "{" and text[index + 1 : index + 2] != "{":
            close = text.find("}", index + 1)
            reopen = text.find("{", index + 1)
            if close == -1 or -1 < reopen < close:
                raise TemplateError("'{' is never closed; close it with '}'", position=index)
            if buffer:
                pieces.append(Literal(text="".join(buffer), position=start))
                buffer.clear()
            pieces.append(_parse_placeholder(text[index + 1 : close], position=index))
            index = close + 1
            continue
        if char == "}" and text[index + 1 : index + 2] != "}":
            raise TemplateError("'}' has no matching '{'; write '}}' for a brace", position=index)
        if not buffer:
            start = index
        buffer.append(char)
        index += 2 if char in "{}" else 1
    if buffer:
        pieces.append(Literal(text="".join(buffer), position=start))
    return pieces


def _check_field(placeholder: Placeholder, *, columns: Collection[str]) -> None:
    field, position = placeholder.field, placeholder.position
    known = field in PLACEHOLDER_COLUMNS or field in DERIVED_COLUMNS
    if not known and field not in columns:
        names = sorted({*PLACEHOLDER_COLUMNS, *DERIVED_COLUMNS, *columns})
        close = difflib.get_close_matches(field, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise TemplateError(f"unknown field '{field}'{hint}", position=position)
    absent = [column for column in placeholder.columns if column not in columns]
    if not absent:
        return
    if field in CAMPAIGN_FIELDS:
        raise TemplateError(
            f"the campaign provides no {field}; give it one or remove {{{field}}}",
            position=position,
        )
    raise TemplateError(
        f"field '{field}' needs the audience column '{absent[0]}', which this audience lacks",
        position=position,
    )


def _check_encodable(text: str) -> None:
    """Refuses a lone surrogate (a broken emoji from a JSON escape): no SMS can carry it."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise TemplateError(
                "half of an emoji or other symbol stands here; paste the whole symbol again"
                " or remove it",
                position=index,
            )


def parse_template(text: str, *, columns: Collection[str] = AUDIENCE_COLUMNS) -> Template:
    """Parses and checks `text` against the audience `columns` (plus per-message ones)."""
    _check_encodable(text)
    pieces = _parse_pieces(text)
    for piece in pieces:
        if isinstance(piece, Placeholder):
            _check_field(piece, columns=columns)
    return Template(source=text, pieces=tuple(pieces))


def signature_of(brand_name: str) -> str:
    """Returns the brand signature as carriers expect it: 【品牌】."""
    return f"【{brand_name}】"


def _needs_separator(template: Template) -> bool:
    last = template.pieces[-1] if template.pieces else None
    if isinstance(last, Literal):
        return last.text[-1] not in " \n。！？，；、.!?,;"
    return last is not None


def frame_template(
    template: Template,
    *,
    kind: MessageKind,
    brand_name: str | None = None,
    opt_out_text: str | None = None,
) -> Template:
    """Adds the brand signature first and, for marketing, the opt-out text last, if absent."""
    settings = get_settings()
    signature = signature_of(brand_name or settings.brand_name)
    opt_out = opt_out_text or settings.opt_out_text
    shared = template.literal_text
    pieces, source = list(template.pieces), template.source
    if signature not in shared:
        shift = len(_escape(signature))
        pieces = [replace(p, position=p.position + shift) for p in pieces]
        pieces.insert(0, Literal(text=signature, position=0))
        source = _escape(signature) + source
    if kind is MessageKind.MARKETING and opt_out not in shared:
        tail = (" " if _needs_separator(template) else "") + opt_out
        pieces.append(Literal(text=tail, position=len(source)))
        source += _escape(tail)
    return Template(source=source, pieces=tuple(pieces))


def prepare_template(
    text: str,
    *,
    kind: MessageKind,
    columns: Collection[str] = AUDIENCE_COLUMNS,
    brand_name: str | None = None,
    opt_out_text: str | None = None,
) -> Template:
    """Parses, checks and frames `text`: what a campaign renders for its audience."""
    template = parse_template(text, columns=columns)
    return frame_template(template, kind=kind, brand_name=brand_name, opt_out_text=opt_out_text)
