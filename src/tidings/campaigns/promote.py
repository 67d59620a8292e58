"""Promoting an A/B winner during a staged rollout: when a stage is released and a variant
beats the control on orders (p < 0.05), the later stages' still-planned messages are rendered
again with the winner's template and assigned to it, in bulk (their coupons and short links
are issued when their stage is released, as the winner's texts show them).

Only campaigns created with `promote_winner` do this, and only once: the promotion is kept
in the campaign's rollout report, and later stages then hold the winner alone. A member whose
values the winner's template cannot show (a missing field or a blocked word) keeps the
message planned for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.campaigns.models import Campaign, Variant
from tidings.campaigns.planner import CONTENT_KIND, audience_fields, checked_texts
from tidings.campaigns.spec import campaign_fields, plan_spec
from tidings.config import get_settings
from tidings.content.lint import lint_rules
from tidings.reports.stats import ab_summary
from tidings.segments.audience import local_today
from tidings.segments.snapshot import snapshot
from tidings.tracking.models import link_message_sql

PROMOTION = "promotion"  # the kind of a rollout report entry that records a promotion
SENT = "m.attempts > 0 AND m.state NOT IN ('queued', 'cancelled', 'skipped')"  # taken


def promoted(campaign: Campaign) -> bool:
    """Whether the campaign's later stages already went to a winner."""
    return any(entry.get("kind") == PROMOTION for entry in campaign.rollout_report or [])


def arms_so_far(db_session: Session, campaign: Campaign) -> pl.DataFrame:
    """Per variant of the released stages: recipients, people who clicked, orders credited."""
    store = BulkStore(db_session)
    scope = "m.campaign_id = ? AND m.rollout_stage <= ? AND m.variant_id IS NOT NULL"
    params = (campaign.id, campaign.rollout_stage)
    counts = {"variant_id": pl.Int64, "count": pl.Int64}
    recipients = store.frame(
        f"SELECT m.variant_id, COUNT(*) FROM messages m WHERE {scope}"
        f" AND {SENT}"
        " GROUP BY m.variant_id",
        params,
        schema=counts,
    ).rename({"count": "recipients"})
    clicked = store.frame(
        "SELECT m.variant_id, COUNT(DISTINCT m.id) FROM messages m"
        f" JOIN short_links l ON {link_message_sql('l', 'm')}"
        " JOIN clicks c ON c.link_id = l.id AND NOT c.is_robot"
        f" WHERE {scope} GROUP BY m.variant_id",
        params,
        schema=counts,
    ).rename({"count": "clicked"})
    converted = store.frame(
        "SELECT m.variant_id, COUNT(DISTINCT a.message_id) FROM attributions a"
        f" JOIN messages m ON m.id = a.message_id WHERE {scope} GROUP BY m.variant_id",
        params,
        schema=counts,
    ).rename({"count": "converted"})
    names = pl.DataFrame(
        db_session.execute(
            select(Variant.id, Variant.name).where(Variant.campaign_id == campaign.id)
        ).all(),
        schema={"variant_id": pl.Int64, "variant": pl.String},
        orient="row",
    )
    joined = names
    for part in (recipients, clicked, converted):
        joined = joined.join(part, on="variant_id", how="left")
    return joined.fill_null(0)


def winner_of(arms: pl.DataFrame, control: str) -> dict[str, Any] | None:
    """The variant that beats the control on orders by the most, with its comparison."""
    winners = [row for row in ab_summary(arms, control=control) if row["winner"]]
    if not winners:
        return None
    return max(winners, key=lambda row: row["converted"]["difference"]["value"])


def _texts(
    store: BulkStore, campaign: Campaign, variant: Variant, members: pl.DataFrame
) -> pl.DataFrame:
    """The winner's text for each member, measured and checked as at planning."""
    settings = get_settings()
    spec = plan_spec(campaign, [variant], settings)
    zone = settings.default_timezone
    engine = store.session.get_bind()
    assert isinstance(engine, Engine), "a campaign is promoted on a session bound to an engine"
    audience = snapshot(engine, today=local_today(zone), fields=audience_fields(spec))
    rows = audience.join(members, on="member_id", how="semi", maintain_order="left")
    rows = campaign_fields(rows, campaign, zone)
    checked = checked_texts(
        rows,
        spec.variants[0].template,
        scheme=spec.scheme,
        price_per_part_cents=spec.price_per_part_cents,
        lint=lint_rules(kind=CONTENT_KIND[campaign.kind], scheme=spec.scheme),
    )
    return checked.filter(pl.col("_missing").is_null() & pl.col("_blocked").is_null())


def _control(db_session: Session, campaign: Campaign) -> Variant | None:
    """The variant marked as control, else the first (variant A)."""
    variants = db_session.scalars(
        select(Variant).where(Variant.campaign_id == campaign.id).order_by(Variant.id)
    ).all()
    return next((v for v in variants if v.is_control), variants[0] if variants else None)


def _rewrite(store: BulkStore, messages: pl.DataFrame, texts: pl.DataFrame, variant_id: int) -> int:
    """Writes the winner's texts over the planned messages; returns how many changed."""
    updates = messages.join(texts, on="member_id", how="inner").select(
        "id",
        text="_text",
        parts=pl.col("_parts").cast(pl.Int64),
        cost_cents=pl.col("_cost").cast(pl.Int64),
        variant_id=pl.lit(variant_id, dtype=pl.Int64),
    )
    if updates.height == 0:
        return 0
    store.create_temp(
        "promoted_messages",
        {
            "id": "BIGINT",
            "text": "TEXT",
            "parts": "INTEGER",
            "cost_cents": "BIGINT",
            "variant_id": "BIGINT",
        },
    )
    store.ingest("promoted_messages", updates)
    return store.execute(
        "UPDATE messages SET text = p.text, parts = p.parts, cost_cents = p.cost_cents,"
        " variant_id = p.variant_id FROM promoted_messages p"
        " WHERE messages.id = p.id AND messages.state = 'planned'"
    )


def promote_winner(
    *, db_session: Session, campaign: Campaign, now: datetime
) -> dict[str, Any] | None:
    """Sends the later stages with the variant that beats the control on orders, if one
    does; returns the rollout report entry that records it, or None."""
    control = _control(db_session, campaign)
    if promoted(campaign) or control is None:
        return None
    arms = arms_so_far(db_session, campaign)
    best = winner_of(arms, control.name) if arms.height > 1 else None
    if best is None:
        return None
    variant = db_session.scalars(
        select(Variant).where(Variant.campaign_id == campaign.id, Variant.name == best["variant"])
    ).one()
    store = BulkStore(db_session)
    later = store.frame(
        "SELECT id, member_id FROM messages WHERE campaign_id = ? AND state = 'planned'"
        " AND rollout_stage > ? AND member_id IS NOT NULL"
        " AND (variant_id IS NULL OR variant_id <> ?)",
        (campaign.id, campaign.rollout_stage, variant.id),
        schema={"id": pl.Int64, "member_id": pl.Int64},
    )
    texts = _texts(store, campaign, variant, later.select("member_id").unique())
    changed = _rewrite(store, later, texts, variant.id)
    entry = {
        "kind": PROMOTION,
        "stage": campaign.rollout_stage,
        "checked_at": now.isoformat(),
        "winner": variant.name,
        "control": control.name,
        "verdict": best["verdict"],
        "p_value": best["converted"]["p_value"],
        "arms": arms.select("variant", "recipients", "clicked", "converted").to_dicts(),
        "messages": changed,
        "kept": later.height - changed,
    }
    campaign.rollout_report = [*(campaign.rollout_report or []), entry]
    db_session.flush()
    return entry
