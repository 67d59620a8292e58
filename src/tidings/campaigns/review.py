"""The review of a planned campaign: what will happen before anything is sent.

Audience, holdout, counts per variant, skips by reason, parts and estimated cost, the first
messages as they will be received, and every content finding of each variant's template
and first message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from tidings.campaigns import service
from tidings.campaigns.planner import CONTENT_KIND
from tidings.campaigns.service import CampaignStateError
from tidings.campaigns.spec import counting_of, template_columns
from tidings.config import get_settings
from tidings.content.lint import lint_rules, lint_template, lint_text
from tidings.content.template import prepare_template
from tidings.db import UtcDateTime
from tidings.providers.templates import NOT_APPROVED

FIRST_SHOWN = 5  # messages shown as rendered


def mask_phone(phone: str) -> str:
    """Hides the middle of a phone number: +86139****0001."""
    if len(phone) < 9:
        return phone
    return phone[:-8] + "****" + phone[-4:]


def _per_variant(db_session: Session, campaign_id: int) -> dict[int, tuple[int, int, int]]:
    rows = db_session.execute(
        text(
            "SELECT variant_id, COUNT(*), SUM(parts), SUM(cost_cents) FROM messages"
            " WHERE campaign_id = :id AND state <> 'skipped' GROUP BY variant_id"
        ),
        {"id": campaign_id},
    ).all()
    return {int(v): (int(n), int(p or 0), int(c or 0)) for v, n, p, c in rows if v is not None}


FIRST_MESSAGES = (
    "SELECT m.member_id, m.phone, v.name, m.send_at, m.rollout_stage, m.parts, m.text"
    " FROM messages m LEFT JOIN variants v ON v.id = m.variant_id"
    " WHERE m.campaign_id = :id AND m.state <> 'skipped' AND {which}"
    " ORDER BY m.member_id LIMIT :first"
)


def _first_messages(
    db_session: Session, campaign_id: int, first: int, variants: list[Any]
) -> list[dict[str, Any]]:
    """The first `first` messages by member, and the first of each variant not among them:
    a variant's rendered text is checked for findings."""
    rows = _message_rows(db_session, "1 = 1", {"id": campaign_id, "first": first})
    for variant in variants:
        if not any(row[2] == variant.name for row in rows):
            params = {"id": campaign_id, "first": 1, "variant": variant.id}
            rows += _message_rows(db_session, "m.variant_id = :variant", params)
    return [
        {
            "member_id": member,
            "phone": mask_phone(phone),
            "variant": variant,
            "send_at": send_at.isoformat(),  # UTC, with its offset, on either store
            "rollout_stage": stage,
            "parts": parts,
            "text": body,
        }
        for member, phone, variant, send_at, stage, parts, body in rows
    ]


def _message_rows(db_session: Session, which: str, params: dict[str, Any]) -> list[Any]:
    query = text(FIRST_MESSAGES.format(which=which)).columns(send_at=UtcDateTime)
    return list(db_session.execute(query, params).all())


def _findings(campaign: Any, variants: list[Any], shown: list[dict[str, Any]]) -> list[dict]:
    """Findings in each variant's template, and in its first rendered message."""
    spec_kind = CONTENT_KIND[campaign.kind]
    scheme, _price = counting_of(campaign.provider, get_settings())
    rules = lint_rules(kind=spec_kind, scheme=scheme)
    columns = template_columns(
        coupon=bool(campaign.coupon),
        link=bool(campaign.links),
        expires=campaign.expires_at is not None,
    )
    found: list[dict[str, Any]] = []
    for variant in variants:
        template = prepare_template(variant.template, kind=spec_kind, columns=columns)
        for finding in lint_template(template, rules=rules):
            found.append({"variant": variant.name, "where": "template", **finding.as_dict()})
        sample = next((m for m in shown if m["variant"] == variant.name), None)
        if sample is None:
            continue
        in_template = {(f["code"], f["term"]) for f in found if f["variant"] == variant.name}
        for finding in lint_text(sample["text"], rules=rules):
            if (str(finding.code), finding.term) not in in_template:
                where = f"message to member {sample['member_id']}"
                found.append({"variant": variant.name, "where": where, **finding.as_dict()})
    return found


def _unapproved(db_session: Session, campaign: Any, variants: list[Any]) -> list[dict]:
    """An error for each variant whose messages the provider would refuse (not approved)."""
    names = {variant.id: variant.name for variant in variants}
    refusals = service.unapproved_texts(db_session=db_session, campaign=campaign)
    return [_refusal(names.get(variant_id, ""), reason) for variant_id, reason in refusals]


def _refusal(variant: str, reason: str) -> dict[str, Any]:
    return {
        "variant": variant,
        "where": "provider",
        "code": NOT_APPROVED,
        "severity": "error",
        "start": 0,
        "end": 0,
        "term": "",
        "message": reason,
    }


def review(*, db_session: Session, campaign_id: int, first: int = FIRST_SHOWN) -> dict[str, Any]:
    """Everything an operator should see before sending a planned campaign."""
    campaign = service.get(db_session=db_session, campaign_id=campaign_id)
    summary = campaign.plan_summary
    if summary is None:
        raise CampaignStateError(
            f"campaign {campaign_id} has no plan yet; run: tidings campaign plan {campaign_id}"
        )
    variants = service.variants_of(db_session=db_session, campaign_id=campaign_id)
    counts = _per_variant(db_session, campaign_id)
    parts = db_session.execute(
        text(
            "SELECT parts, COUNT(*) FROM messages WHERE campaign_id = :id AND state <> 'skipped'"
            " GROUP BY parts ORDER BY parts"
        ),
        {"id": campaign_id},
    ).all()
    shown = _first_messages(db_session, campaign_id, first, variants)
    status = service.status(db_session=db_session, campaign_id=campaign_id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": str(campaign.kind),
        "status": str(campaign.status),
        "schedule": status["schedule"],
        "rollout_stages": status["rollout_stages"],
        "holdout_share": campaign.holdout_share,
        **summary,
        "variants": [
            {
                "name": v.name,
                "weight": v.weight,
                "template": v.template,
                "messages": counts.get(v.id, (0, 0, 0))[0],
                "segments": counts.get(v.id, (0, 0, 0))[1],
                "cost_cents": counts.get(v.id, (0, 0, 0))[2],
            }
            for v in variants
        ],
        "parts": {str(p): int(n) for p, n in parts},
        "first_messages": shown,
        "findings": _findings(campaign, variants, shown)
        + _unapproved(db_session, campaign, variants),
    }
