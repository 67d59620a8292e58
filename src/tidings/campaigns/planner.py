"""The campaign planner: from an audience frame to one message row per member, in one pass.

Every step is a Polars expression or a numpy operation over the whole audience, never a
Python call per member: phone checks, the policy decision (suppression, consent, one per
campaign, send windows, caps and cool-downs), holdout and variant draws, send times, rendering
per variant, word checks, length and cost. Each member ends `planned` (with a variant, a send
time and a rollout stage) or `skipped` with the reason; held-out members are recorded as
skipped with reason `holdout`, so lift can be measured later. The draws depend only on the
campaign and the member, so planning twice gives the same plan. The plan comes in pieces
(`plan_pieces`), so that the store takes one while the next is rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from tidings.campaigns.assign import Purpose, draws, pick_by_weight, rollout_stage_of
from tidings.campaigns.models import CampaignKind
from tidings.campaigns.schedule import Schedule, desired_times
from tidings.content.length import CountingScheme, measure
from tidings.content.lint import LintRules, lint_messages
from tidings.content.render import render_filled
from tidings.content.template import MessageKind as ContentKind
from tidings.content.template import Template
from tidings.dispatch.models import PRIORITY, MessageKind, MessageState
from tidings.policy.decide import Decision, decide
from tidings.policy.reasons import SkipReason
from tidings.policy.rules import CandidateKind, PolicyRules
from tidings.segments.fields import FIELDS

UTC_TIME = pl.Datetime("us", "UTC")
HOLDOUT = "holdout"
CHECKED_SCHEMA = {
    "member_id": pl.Int64,
    "_text": pl.String,
    "_missing": pl.String,
    "_blocked": pl.String,
    "_parts": pl.Int64,
    "_cost": pl.Int64,
}
BLOCKED_PREFIX = "content:"  # a rendered message a word check or length rule stops
PREFERENCE_PREFIX = "preference:"  # a member who declined the campaign's kind of message
REASON_LENGTH = 64  # characters the messages table keeps of a skip reason
PIECE_ROWS = 250_000  # going members rendered (and then written) at a time
GIVEN_FIELDS = ("coupon", "link")  # values a campaign derives per member, e.g. a code
# Adds the given fields to the rows that render, each where `shows[field]` is true.
GivenFields = Callable[[pl.DataFrame, Mapping[str, pl.Expr]], pl.DataFrame]

# A campaign's kind decides three things, mapped here and nowhere else. The policy ranks
# higher numbers first (transactional and replies 300, triggers 200, marketing 100); the
# dispatcher claims lower numbers first (replies 0, transactional 1, triggers 5, marketing
# 9, `dispatch.models.PRIORITY`). A notification informs (a store moved): it needs no
# consent and carries no opt-out text, but keeps quiet hours and suppression by complaint.
POLICY_KIND = {
    CampaignKind.MARKETING: CandidateKind.MARKETING,
    CampaignKind.NOTIFICATION: CandidateKind.TRANSACTIONAL,
}
MESSAGE_KIND = {
    CampaignKind.MARKETING: MessageKind.MARKETING,
    CampaignKind.NOTIFICATION: MessageKind.TRANSACTIONAL,
}
CONTENT_KIND = {
    CampaignKind.MARKETING: ContentKind.MARKETING,
    CampaignKind.NOTIFICATION: ContentKind.TRANSACTIONAL,
}
AUDIENCE_NEEDS = ("member_id", "phone", "phone_status", "consent", "tier", "lifecycle_stage")
PLAN_COLUMNS = (
    "member_id",
    "variant_id",
    "phone",
    "timezone",
    "state",
    "skip_reason",
    "text",
    "parts",
    "cost_cents",
    "rollout_stage",
    "send_at",
    "expires_at",
)


def audience_fields(spec: PlanSpec) -> set[str]:
    """The audience fields a plan reads: the policy's, the schedule's and the templates'."""
    placeholders = (
        column
        for variant in spec.variants
        for placeholder in variant.template.placeholders
        for column in placeholder.columns
    )
    return {*AUDIENCE_NEEDS, "best_hour", *(name for name in placeholders if name in FIELDS)}


def dispatch_priority(kind: CampaignKind) -> int:
    """The dispatcher's priority (lower goes first) of a campaign's messages."""
    return PRIORITY[MESSAGE_KIND[kind]]


@dataclass(frozen=True)
class PlanVariant:
    """One arm of the campaign as the planner needs it: a framed, checked template."""

    id: int
    name: str
    template: Template
    weight: int


@dataclass(frozen=True)
class PlanSpec:
    """Everything about a campaign that decides its plan."""

    campaign_id: int
    kind: CampaignKind
    offer_type: str | None
    variants: tuple[PlanVariant, ...]
    holdout_share: float
    schedule: Schedule
    expires_at: datetime | None
    rollout_stages: tuple[int, ...]
    timezone: str  # the brand's: schedules without a zone are read in it
    scheme: CountingScheme
    price_per_part_cents: int
    category: str | None = None  # its kind of message: who declined it is skipped


def _assign(audience: pl.DataFrame, spec: PlanSpec) -> pl.DataFrame:
    """Adds the campaign's draws per member: holdout, variant, rollout stage, spread order."""
    ids = audience["member_id"].to_numpy()
    weights = [variant.weight for variant in spec.variants]
    variant = pick_by_weight(draws(spec.campaign_id, ids, Purpose.VARIANT), weights)
    stage = rollout_stage_of(draws(spec.campaign_id, ids, Purpose.ROLLOUT), spec.rollout_stages)
    held = draws(spec.campaign_id, ids, Purpose.HOLDOUT) < spec.holdout_share
    return audience.with_columns(
        _variant=pl.Series(variant),
        _stage=pl.Series(stage),
        _held=pl.Series(held),
        _order=pl.Series(draws(spec.campaign_id, ids, Purpose.SPREAD)),
    )


def candidates_of(frame: pl.DataFrame, spec: PlanSpec, *, desired: str) -> pl.DataFrame:
    """The policy's candidate frame: one marketing (or transactional) message per row."""
    return frame.select(
        "member_id",
        "phone_hash",
        "consent",
        "tier",
        "lifecycle_stage",
        "timezone",
        desired_at=desired,
        kind=pl.lit(POLICY_KIND[spec.kind].value),
        campaign_id=pl.lit(spec.campaign_id, dtype=pl.Int64),
        offer_type=pl.lit(spec.offer_type, dtype=pl.String),
        expires_at=pl.lit(spec.expires_at, dtype=UTC_TIME),
    )


def _decide(
    frame: pl.DataFrame,
    spec: PlanSpec,
    *,
    history: pl.DataFrame,
    suppressions: pl.DataFrame,
    rules: PolicyRules,
    now: datetime,
    declined: pl.Series | None = None,
) -> pl.DataFrame:
    """Runs the policy over every member with a usable phone; adds `_decision`, `_send_at`,
    `_reason` (the skip reason, or null). Members in `declined` chose not to get the
    campaign's kind of message: `preference:<kind>`."""
    usable = (pl.col("phone_status") == "ok") & pl.col("phone").is_not_null()
    frame = frame.with_columns(_usable=usable.fill_null(False))
    candidates = candidates_of(frame.filter(pl.col("_usable")), spec, desired="_desired")
    decided = decide(
        candidates, history=history, suppressions=suppressions, rules=rules, now=now
    ).select(
        "member_id",
        _decision="decision",
        _send_at="send_at",
        _policy_reason="reason",
    )
    frame = frame.join(decided, on="member_id", how="left", maintain_order="left")
    skipped = pl.col("_decision") == Decision.SKIP
    reason = (
        pl.when(~pl.col("_usable"))
        .then(pl.lit(SkipReason.INVALID_PHONE.value))
        .when(skipped)
        .then(pl.col("_policy_reason"))
        .when(pl.col("member_id").is_in(_ids(declined).implode()))
        .then(pl.lit(f"{PREFERENCE_PREFIX}{spec.category}"))
        .when(pl.col("_held"))
        .then(pl.lit(HOLDOUT))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return frame.with_columns(_reason=reason)


def _ids(declined: pl.Series | None) -> pl.Series:
    return pl.Series("member_id", [] if declined is None else declined, dtype=pl.Int64)


def _rendered(
    rows: pl.DataFrame,
    index: int,
    spec: PlanSpec,
    lint: LintRules,
    given: GivenFields | None,
) -> pl.DataFrame:
    """Renders the going members of variant `index` with its template, measures each message
    and stops those a word check or length rule blocks (the template's literal text is
    measured and checked once, the values per member). `given` derives the campaign's own
    values (a coupon code, a short link) where the variant shows them, never for the skipped
    or held out."""
    if given is not None:
        rows = given(rows, {field: pl.lit(_shows(spec, field, index)) for field in GIVEN_FIELDS})
    variant = spec.variants[index]
    checked = _variant_texts(rows, variant.template, spec, lint)
    rows = rows.join(checked, on="member_id", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("_missing").is_not_null())
        .then(pl.col("_missing"))
        .when(pl.col("_blocked").is_not_null())
        .then(pl.concat_str(pl.lit(BLOCKED_PREFIX), pl.col("_blocked")))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return rows.with_columns(_reason=reason.str.slice(0, REASON_LENGTH))


def _shows(spec: PlanSpec, field: str, index: int) -> bool:
    """Whether variant `index` shows `field` in its template."""
    template = spec.variants[index].template
    return any(piece.field == field for piece in template.placeholders)


def _variant_texts(
    rows: pl.DataFrame, template: Template, spec: PlanSpec, lint: LintRules
) -> pl.DataFrame:
    return checked_texts(
        rows,
        template,
        scheme=spec.scheme,
        price_per_part_cents=spec.price_per_part_cents,
        lint=lint,
    )


def checked_texts(
    rows: pl.DataFrame,
    template: Template,
    *,
    scheme: CountingScheme,
    price_per_part_cents: int,
    lint: LintRules,
) -> pl.DataFrame:
    """Renders `template` for each row, measures and checks it: CHECKED_SCHEMA (`_text`,
    `_missing` and `_blocked` reasons, `_parts`, `_cost`); campaigns and triggers share it."""
    rendered, filled = render_filled(template, rows)
    texts = rendered["text"]
    measured = measure(
        texts, scheme=scheme, price_per_part_cents=price_per_part_cents, filled=filled
    )
    blocked = lint_messages(texts, rules=lint, measured=measured, filled=filled)
    return pl.DataFrame(
        {
            "member_id": rendered["member_id"],
            "_text": texts,
            "_missing": rendered["skip_reason"],
            "_blocked": blocked,
            "_parts": measured["segments"],
            "_cost": measured["cost_cents"],
        },
        schema=CHECKED_SCHEMA,
    )


def plan_pieces(
    audience: pl.DataFrame,
    spec: PlanSpec,
    *,
    history: pl.DataFrame,
    suppressions: pl.DataFrame,
    rules: PolicyRules,
    lint: LintRules,
    now: datetime,
    declined: pl.Series | None = None,
    given: GivenFields | None = None,
) -> Iterator[pl.DataFrame]:
    """Plans the campaign for `audience` (one row per member; AUDIENCE_NEEDS, `timezone`,
    `phone_hash`, `best_hour` and the template's fields) a piece at a time, so that a piece
    can be written while the next is planned: first the members the policy skips or holds
    out, then the going members, `PIECE_ROWS` at a time, rendered with their variant's
    template and checked.

    Every piece has PLAN_COLUMNS, plus `holdout` (bool), `variant` (the variant's name, null
    when skipped) and the fields `given` adds (null where the member's message does not show
    them); every member of the audience is in one piece.
    """
    frame = _assign(audience.unique("member_id", keep="first", maintain_order=True), spec)
    frame = frame.with_columns(
        _desired=desired_times(
            frame,
            schedule=spec.schedule,
            now=now,
            order=frame["_order"].to_numpy(),
            timezone=spec.timezone,
        )
    )
    frame = _decide(
        frame,
        spec,
        history=history,
        suppressions=suppressions,
        rules=rules,
        now=now,
        declined=declined,
    )
    # Each piece carries every field `given` adds, whichever variants show it.
    shown = frame.clear() if given is None else given(frame.clear(), {})
    fields = [name for name in GIVEN_FIELDS if name in shown.columns]
    yield _plan_rows(frame.filter(pl.col("_reason").is_not_null()), spec, fields)
    going = frame.filter(pl.col("_reason").is_null()).with_row_index("_at")
    for start in range(0, going.height, PIECE_ROWS):
        block = going.slice(start, PIECE_ROWS)
        variants = [
            _rendered(block.filter(pl.col("_variant") == index), index, spec, lint, given)
            for index in range(len(spec.variants))
        ]
        # In the audience's order, the variants mixed: the dispatcher sends messages due at
        # the same moment in the order they were written, and neither variant goes first.
        yield _plan_rows(pl.concat(variants).sort("_at"), spec, fields)


def _plan_rows(frame: pl.DataFrame, spec: PlanSpec, fields: list[str]) -> pl.DataFrame:
    """The plan's columns of decided (and, for the going, rendered) rows."""
    absent = {**CHECKED_SCHEMA, **dict.fromkeys(fields, pl.String)}
    frame = frame.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in absent.items()
        if name not in frame.columns
    )
    planned = pl.col("_reason").is_null()
    ids = pl.Series([variant.id for variant in spec.variants], dtype=pl.Int64)
    names = pl.Series([variant.name for variant in spec.variants], dtype=pl.String)
    return frame.select(
        "member_id",
        *fields,
        variant_id=pl.when(planned).then(
            pl.col("_variant").replace_strict(
                pl.int_range(ids.len(), eager=True), ids, return_dtype=pl.Int64
            )
        ),
        phone=pl.col("phone").fill_null(""),
        timezone="timezone",
        state=pl.when(planned)
        .then(pl.lit(MessageState.PLANNED.value))
        .otherwise(pl.lit(MessageState.SKIPPED.value)),
        skip_reason="_reason",
        text=pl.when(planned).then(pl.col("_text")).otherwise(pl.lit("")),
        parts=pl.when(planned).then(pl.col("_parts")).otherwise(0).cast(pl.Int32),
        cost_cents=pl.when(planned).then(pl.col("_cost")).otherwise(0).cast(pl.Int64),
        rollout_stage=pl.col("_stage").cast(pl.Int32),
        send_at=pl.coalesce("_send_at", "_desired"),
        expires_at=pl.lit(spec.expires_at, dtype=UTC_TIME),
        holdout=pl.col("_reason") == HOLDOUT,
        variant=pl.when(planned).then(
            pl.col("_variant").replace_strict(
                pl.int_range(names.len(), eager=True), names, return_dtype=pl.String
            )
        ),
    )


def summarise(plan: pl.DataFrame, *, audience: int) -> dict[str, object]:
    """The plan's counts, as `tidings campaign plan --json` prints them."""
    planned = plan.filter(pl.col("state") == MessageState.PLANNED.value)
    skipped = plan.filter(
        (pl.col("state") == MessageState.SKIPPED.value) & (pl.col("skip_reason") != HOLDOUT)
    )
    reasons = skipped.group_by("skip_reason").len().sort("skip_reason")
    return {
        "audience": audience,
        "holdout": int(plan["holdout"].sum()),
        "planned": planned.height,
        "skipped": {str(r): int(n) for r, n in reasons.iter_rows()},
        "segments_total": int(planned["parts"].sum() or 0),
        "cost_cents": int(planned["cost_cents"].sum() or 0),
    }
