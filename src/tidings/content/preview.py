"""A template as one member would read it: rendered with their values, framed with the
signature and opt-out text, measured (characters, parts, cost) and checked, with each
finding's place in the text so the console can highlight it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.campaigns.spec import counting_of
from tidings.config import Settings
from tidings.content.length import measure_text
from tidings.content.lint import Finding, lint_rules, lint_text
from tidings.content.render import render_one
from tidings.content.template import (
    AUDIENCE_COLUMNS,
    CAMPAIGN_FIELDS,
    MessageKind,
    prepare_template,
)
from tidings.members.models import Member, Store
from tidings.profiles.models import Profile

SAMPLE_COUPON = "TD8K2Q"  # what {coupon} shows before a campaign issues real codes
SAMPLE_LINK_CODE = "a1B2c3"
# What {preference_link} shows without a member: a token as long as a millionth member's.
SAMPLE_PREFERENCE_TOKEN = "123456720790Ab3dE9fG"


@dataclass(frozen=True)
class Stretch:
    """A stretch of the previewed text, with the finding that covers it, if any."""

    text: str
    finding: Finding | None


def member_values(
    *, db_session: Session, member: Member | None, settings: Settings
) -> dict[str, object]:
    """The values a template's placeholders take for `member` (samples for campaign fields)."""
    values: dict[str, object] = {
        "coupon": SAMPLE_COUPON,
        "link": f"{settings.short_link_base}/s/{SAMPLE_LINK_CODE}",
        "expiry_date": None,
    }
    if member is None:
        values["preference_link"] = f"{settings.short_link_base}/p/{SAMPLE_PREFERENCE_TOKEN}"
        return values
    store = db_session.get(Store, member.store_id) if member.store_id else None
    profile = db_session.get(Profile, member.id)
    values.update(
        member_id=member.id,
        phone=member.phone,
        name=member.name,
        gender=member.gender,
        birthday=member.birthday,
        points=member.points,
        tier=(profile.tier if profile else None) or member.tier,
        store_name=store.name if store else None,
        city=store.city if store else None,
        top_category=profile.top_category if profile else None,
        best_hour=profile.best_hour if profile else None,
    )
    return values


def stretches(text: str, findings: list[Finding]) -> list[Stretch]:
    """The text cut at the findings' edges; overlapping findings keep the first."""
    result: list[Stretch] = []
    at = 0
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start < at or finding.end <= finding.start:
            continue
        if finding.start > at:
            result.append(Stretch(text[at : finding.start], None))
        result.append(Stretch(text[finding.start : finding.end], finding))
        at = finding.end
    if at < len(text):
        result.append(Stretch(text[at:], None))
    return result


def preview(
    *, db_session: Session, template_text: str, member: Member | None, settings: Settings
) -> dict[str, Any]:
    """The framed, rendered text for the member, its measure and findings (TemplateError on
    a template that cannot be read)."""
    columns = [*AUDIENCE_COLUMNS, *CAMPAIGN_FIELDS]
    template = prepare_template(template_text, kind=MessageKind.MARKETING, columns=columns)
    rendering = render_one(
        template, member_values(db_session=db_session, member=member, settings=settings)
    )
    if rendering.text is None:
        return {"text": None, "skip_reason": rendering.skip_reason}
    scheme, price = counting_of(settings.default_provider, settings)
    measured = measure_text(rendering.text, scheme=scheme, price_per_part_cents=price)
    findings = lint_text(
        rendering.text, rules=lint_rules(kind=MessageKind.MARKETING, scheme=scheme)
    )
    return {
        "text": rendering.text,
        "skip_reason": None,
        "characters": len(rendering.text),
        "encoding": str(measured.encoding),
        "units": measured.units,
        "segments": measured.segments,
        "cost_cents": measured.cost_cents,
        "findings": findings,
        "stretches": stretches(rendering.text, findings),
    }
