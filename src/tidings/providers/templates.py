"""Pre-approved templates of cloud providers (Aliyun, Tencent) and how a message fits one.

Chinese cloud providers send only texts built from a template they approved, identified by a
code, with its variables as parameters. An account maps our template key to the approved
template: `{"templates": {"会员日": {"code": "SMS_1525", "text": "${name}您好，会员日..."}}}`,
the text written as the provider's console shows it (`${name}` for Aliyun, `{1}` for
Tencent). At send time the rendered message (its 【sign】 taken off, as the provider adds
it) is matched against the approved texts, and the variables are read back from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from tidings.providers.base import OutgoingMessage, SendResult

if TYPE_CHECKING:
    from tidings.config import Settings

NOT_APPROVED = "template_not_approved"  # error code of a message no approved template fits
TEMPLATE_TYPES = {"aliyun": re.compile(r"\$\{(\w+)\}"), "tencent": re.compile(r"\{(\d+)\}")}
_SIGN = re.compile(r"^【([^】]{1,40})】")


class ApprovedTemplate(BaseModel):
    """One template the provider approved: its code and its text in the provider's syntax."""

    model_config = ConfigDict(extra="forbid")

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """A message fitted to an approved template: the code and the variables' values."""

    key: str
    code: str
    params: dict[str, str]  # variable name (Aliyun) or number (Tencent) -> value


class TemplateBook:
    """An account's approved templates, compiled once, matched against each message."""

    def __init__(self, kind: str, templates: Mapping[str, ApprovedTemplate]) -> None:
        variable = TEMPLATE_TYPES[kind]
        self._patterns: list[tuple[str, ApprovedTemplate, re.Pattern[str], list[str]]] = []
        for key, template in templates.items():
            pattern, names = _compile(template.text, variable)
            self._patterns.append((key, template, pattern, names))

    def match(self, body: str) -> TemplateMatch | None:
        """The first approved template `body` fits, with its variables; None if none fits."""
        for key, template, pattern, names in self._patterns:
            found = pattern.fullmatch(body)
            if found is None:
                continue
            params: dict[str, str] = {}
            for name, value in zip(names, found.groups(), strict=True):
                if params.setdefault(name, value) != value:
                    break  # a variable used twice must have one value
            else:
                return TemplateMatch(key, template.code, params)
        return None

    def fit(
        self, messages: Sequence[OutgoingMessage], sign_name: str
    ) -> tuple[list[tuple[OutgoingMessage, str, TemplateMatch]], list[SendResult]]:
        """Each message with its signature (`sign_name` when it has none) and the template
        it fits; a message no approved template fits fails for good, as the provider would
        refuse it."""
        fitted: list[tuple[OutgoingMessage, str, TemplateMatch]] = []
        refused: list[SendResult] = []
        for message in messages:
            sign, body = split_sign(message.text, sign_name)
            match = self.match(body)
            if match is None:
                refused.append(SendResult.failed(message.id, NOT_APPROVED, permanent=True))
            else:
                fitted.append((message, sign, match))
        return fitted, refused


def _compile(text: str, variable: re.Pattern[str]) -> tuple[re.Pattern[str], list[str]]:
    parts: list[str] = []
    names: list[str] = []
    position = 0
    for found in variable.finditer(text):
        parts.append(re.escape(text[position : found.start()]))
        parts.append("(.+?)")
        names.append(found.group(1))
        position = found.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts), re.DOTALL), names


def split_sign(text: str, default: str) -> tuple[str, str]:
    """Splits '【品牌】text' into ('品牌', 'text'); a text without one gets `default`."""
    found = _SIGN.match(text)
    if found is None:
        return default, text
    return found.group(1), text[found.end() :]


def approval_missing(account: str, text: str, *, settings: Settings) -> str | None:
    """Why `text` (a rendered message, signature included) cannot go through `account`.

    None when the account sends any text, or when the text fits one of the templates the
    provider approved for it. The campaign review shows the reason and sending is refused.
    """
    config: Mapping[str, Any] | None = settings.provider_accounts.get(account)
    kind = str(config.get("type", "")) if config is not None else ""
    if config is None or kind not in TEMPLATE_TYPES:
        return None
    raw = config.get("templates") or {}
    try:
        book = TemplateBook(kind, {k: ApprovedTemplate.model_validate(v) for k, v in raw.items()})
    except ValueError:
        return f"provider account {account!r}: each approved template needs 'code' and 'text'"
    if book.match(split_sign(text, "")[1]) is None:
        return (
            f"provider account {account!r} ({kind}) sends only texts of templates the provider"
            " approved, and this message fits none of the account's 'templates'"
            " (TIDINGS_PROVIDER_ACCOUNTS)"
        )
    return None
