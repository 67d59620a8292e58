"""Coupons a campaign gives: one code per member (or as many as the offer's `per_member`),
the first shown by `{coupon}` while the campaign is planned, issued in bulk when the
message's rollout stage is released.

A member's code is a keyed hash of the campaign, the member and the coupon's place among
theirs (`tidings.loyalty.codes`), so planning again gives the same codes, and a plan issues
none: a coupon exists only for a member who is sent it (not for a stage that a failing gate
holds back, nor for a cancelled campaign's members). A code that another coupon already
holds (with ten million coupons issued, about one code in eighty million) is replaced by a
fresh one, in the coupon and in the message text alike (codes have one length: the
message's parts and cost stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from tidings import keys
from tidings.bulk import BulkStore, append_rows, copy_unless_taken, wide_page_cache
from tidings.config import get_settings
from tidings.loyalty.codes import member_codes, random_code
from tidings.loyalty.coupons import CouponTerms
from tidings.loyalty.models import CouponKind, CouponStatus

if TYPE_CHECKING:
    from tidings.campaigns.planner import PlanVariant
    from tidings.campaigns.schemas import CampaignCreate

PLANNED = "planned"
WRITE_CACHE_KIB = 256 * 1024  # SQLite page cache while a plan's coupons are written
UTC_TIME = pl.Datetime("us", "UTC")


def terms_of(coupon: dict[str, Any] | None) -> CouponTerms | None:
    """The coupon offer of a campaign's `coupon` column, or None for a fixed code or none."""
    if not coupon or "offer" not in coupon:
        return None
    return CouponTerms.from_json(coupon["offer"])


def coupon_column(spec: CampaignCreate) -> dict[str, Any] | None:
    """What a new campaign keeps in its `coupon` column: a fixed code, an offer, or nothing."""
    if spec.coupon:
        return {"code": spec.coupon}
    if spec.coupon_offer is None:
        return None
    offer = spec.coupon_offer
    terms = CouponTerms(
        kind=CouponKind.VALUE if offer.value_cents is not None else CouponKind.DISCOUNT,
        value_cents=offer.value_cents or 0,
        discount_percent=offer.discount_percent or 0,
        min_spend_cents=offer.min_spend_cents,
        valid_days=offer.valid_days,
        per_member=offer.per_member,
    )
    return {"offer": terms.as_json()}


def shown_coupons(plan: pl.DataFrame, variants: Sequence[PlanVariant]) -> pl.DataFrame:
    """The rows of a plan whose variant's template shows `{coupon}`: a variant without it
    (the control of a coupon test) issues none."""
    showing = [
        variant.id
        for variant in variants
        if any(piece.field == "coupon" for piece in variant.template.placeholders)
    ]
    return plan.filter(pl.col("variant_id").is_in(showing))


def campaign_codes(member_ids: pl.Series, *, campaign_id: int, place: int = 0) -> pl.Series:
    """Each member's code for a campaign (unique among them), named `coupon`: their first
    coupon's, or the one at `place` (counted from 0) of a member given several."""
    secret = keys.secret(get_settings(), "coupon")
    key = f"campaign:{campaign_id}" if place == 0 else f"campaign:{campaign_id}:{place}"
    return member_codes(secret, key, member_ids).rename("coupon")


def _every_code(
    planned: pl.Series, codes: pl.DataFrame, *, campaign_id: int, per_member: int
) -> pl.DataFrame:
    """`member_id, code` of each planned member's coupons: the code their message shows,
    then the others, each derived from its place (one frame per place, not per member)."""
    first = codes.select("member_id", pl.col("coupon").alias("code"))
    frames = [planned.to_frame("member_id").join(first, on="member_id")]
    for place in range(1, per_member):
        more = campaign_codes(planned, campaign_id=campaign_id, place=place).alias("code")
        frames.append(pl.DataFrame([planned, more]))
    # Both member indexes fill in order; only the code index is random.
    return pl.concat(frames).sort("member_id", maintain_order=True)


def _shared(campaign_id: int, terms: CouponTerms, now: datetime) -> dict[str, Any]:
    """The values every coupon of the campaign shares."""
    return {
        "campaign_id": campaign_id,
        "source": "campaign",
        "kind": terms.kind.value,
        "value_cents": terms.value_cents,
        "discount_percent": terms.discount_percent,
        "min_spend_cents": terms.min_spend_cents,
        "valid_from": now,
        "valid_until": terms.valid_until(now),
        "status": CouponStatus.ISSUED.value,
        "created_at": now,
    }


def _insert(store: BulkStore, rows: pl.DataFrame, shared: dict[str, Any]) -> int:
    """Inserts `member_id, code` rows with the shared values; codes taken already are left
    out. Returns how many went in.

    On SQLite the rows go in as multi-row statements (`append_rows`), which bind the shared
    values once per statement: only two values travel per row. On PostgreSQL the rows are
    COPYed straight into the table; only when a code is taken (rare) are they staged and
    inserted skipping it.
    """
    whole = rows.with_columns(
        pl.lit(value, dtype=UTC_TIME if isinstance(value, datetime) else None).alias(name)
        for name, value in shared.items()
    )
    if store.dialect == "sqlite":
        # A wide page cache keeps the random code index in memory while it grows.
        with wide_page_cache(store.session, WRITE_CACHE_KIB):
            return append_rows(store.session, "coupons", whole, verb="INSERT OR IGNORE")
    if copy_unless_taken(store.session, "coupons", whole):
        return rows.height
    store.create_temp("offer_codes", {"member_id": "BIGINT", "code": "VARCHAR(24)"})
    store.ingest("offer_codes", rows)
    columns = ", ".join(["member_id", "code", *shared])
    markers = ", ".join("?" for _ in shared)
    return store.execute(
        f"INSERT INTO coupons ({columns}) SELECT member_id, code, {markers} FROM offer_codes"
        " ON CONFLICT (code) DO NOTHING",
        tuple(shared.values()),
    )


def _planned_codes(
    plan: pl.DataFrame, codes: pl.DataFrame, *, campaign_id: int, terms: CouponTerms
) -> pl.DataFrame:
    """Every coupon code (member_id, code) the planned members of `plan` are to hold."""
    planned = plan.filter(pl.col("state") == PLANNED)["member_id"].cast(pl.Int64)
    return _every_code(planned, codes, campaign_id=campaign_id, per_member=terms.per_member)


def _issue(
    db_session: Session,
    store: BulkStore,
    campaign_id: int,
    rows: pl.DataFrame,
    shared: dict[str, Any],
) -> int:
    """Inserts the coupons of `rows`, a fresh code for the few another coupon holds; returns
    how many were issued."""
    issued = _insert(store, rows, shared)
    if issued < rows.height:
        issued += _replace_taken(db_session, store, campaign_id, rows, shared)
    return issued


def _replace_taken(
    db_session: Session,
    store: BulkStore,
    campaign_id: int,
    rows: pl.DataFrame,
    shared: dict[str, Any],
) -> int:
    """Gives the few coupons whose code another coupon holds a fresh code, in the coupon
    and in their planned message."""
    have = store.frame(
        "SELECT member_id, code FROM coupons WHERE campaign_id = ?",
        (campaign_id,),
        schema={"member_id": pl.Int64, "code": pl.String},
    )
    taken = rows.join(have, on=["member_id", "code"], how="anti")
    replaced = 0
    for member_id, old in taken.iter_rows():
        fresh = pl.DataFrame({"member_id": [member_id], "code": [random_code()]})
        if _insert(store, fresh, shared) == 1:
            db_session.execute(
                text(
                    "UPDATE messages SET text = REPLACE(text, :old, :new)"
                    " WHERE campaign_id = :campaign AND member_id = :member AND state = 'planned'"
                ),
                {"old": old, "new": fresh["code"][0], "campaign": campaign_id, "member": member_id},
            )
            replaced += 1
    return replaced


def issue_shown(
    *,
    db_session: Session,
    campaign_id: int,
    terms: CouponTerms,
    plan: pl.DataFrame,
    codes: pl.DataFrame,
    now: datetime,
) -> int:
    """Issues the coupons a campaign's messages show to the planned members of `plan`
    (member_id, state) who do not hold them yet, the first with their `codes` (member_id,
    coupon); the campaign's earlier coupons stay (a member given one by the first send sees
    the same code in a follow-up). Returns how many."""
    store = BulkStore(db_session)
    held = store.frame(
        "SELECT member_id, code FROM coupons WHERE campaign_id = ?",
        (campaign_id,),
        schema={"member_id": pl.Int64, "code": pl.String},
    )
    rows = _planned_codes(plan, codes, campaign_id=campaign_id, terms=terms)
    rows = rows.join(held, on=["member_id", "code"], how="anti")
    return _issue(db_session, store, campaign_id, rows, _shared(campaign_id, terms, now))
