"""From occasions to messages: the one path every trigger's firings take, in bulk.

An occasion is a member, a key naming the occasion (`birthday:2026`, `cart:20261202T0930:1h`),
when the message should go, when it stops making sense, and any values the template shows.
Occasions already recorded are dropped; the rest go through the trigger's condition and exit
condition, then the same policy as campaigns (`tidings.policy.decide`: consent, opt-out,
windows and quiet hours, caps with their `+triggers` rule), then rendering, length and word
checks (`tidings.campaigns.planner.checked_texts`). Each becomes a `queued` message (which
the dispatcher sends when due) or a `skipped` one with its reason, and a firing row; both are
written with insert-or-ignore on their unique keys, so a firing happens once even when two
processes handle the same event.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, is_dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.orm import Session

from tidings.campaigns import sources
from tidings.campaigns.planner import BLOCKED_PREFIX, REASON_LENGTH, checked_texts
from tidings.campaigns.spec import counting_of
from tidings.config import get_settings
from tidings.content.lint import lint_rules
from tidings.content.template import MessageKind as ContentKind
from tidings.content.template import Template
from tidings.db import read_frame
from tidings.dispatch.models import PRIORITY, MessageKind, MessageState
from tidings.policy.decide import Decision, decide
from tidings.policy.reasons import SkipReason
from tidings.policy.rules import CandidateKind, PolicyRules
from tidings.segments.audience import load_audience, local_today
from tidings.segments.fields import FIELDS
from tidings.segments.history import aggregates_used
from tidings.segments.service import matching_ids, saved_rules
from tidings.segments.snapshot import order_lines_snapshot
from tidings.segments.tree import FieldRef, InSegment, Rule
from tidings.triggers.outbox import write_firings

UTC_TIME = pl.Datetime("us", "UTC")
OCCASION_SCHEMA: dict[str, Any] = {
    "member_id": pl.Int64,
    "key": pl.String,
    "desired_at": UTC_TIME,
    "expires_at": UTC_TIME,
    "event_at": UTC_TIME,
}
STEPS_PER_TRIGGER = 100  # steps a trigger may have, for the one-per-run rule
# Up to this many members, only their own history is read (an event batch); beyond, all of it.
HISTORY_BY_ID = 10_000
# What the policy and the message need of each member, beyond the template's fields.
MEMBER_NEEDS = ("member_id", "phone", "phone_status", "consent", "tier", "lifecycle_stage")
POLICY_KIND = {
    MessageKind.TRIGGER: CandidateKind.TRIGGER,
    MessageKind.TRANSACTIONAL: CandidateKind.TRANSACTIONAL,
}
CONTENT_KIND = {
    MessageKind.TRIGGER: ContentKind.MARKETING,
    MessageKind.TRANSACTIONAL: ContentKind.TRANSACTIONAL,
}


@dataclass(frozen=True)
class FiringSpec:
    """What firing needs to know of a trigger: its id, wording, kind and conditions."""

    trigger_id: int
    name: str
    message_kind: MessageKind
    template: Template
    offer_type: str | None = None
    condition: Rule | None = None
    exit_condition: Rule | None = None
    provided: tuple[str, ...] = ()  # template fields each occasion brings (not the audience)

    def fields(self) -> set[str] | None:
        """The audience fields its template and rules read, with the policy's; None (every
        field) when a rule names a saved segment, whose fields only the segment knows."""
        used = {column for p in self.template.placeholders for column in p.columns}
        for rule in (self.condition, self.exit_condition):
            names, whole = rule_fields(rule)
            if whole:
                return None
            used |= names
        return {*MEMBER_NEEDS, *(n for n in used if n in FIELDS and n not in self.provided)}


def rule_fields(rule: Rule | None) -> tuple[set[str], bool]:
    """The fields a rule names, and whether it names a saved segment."""
    names: set[str] = set()
    whole = False
    stack: list[Any] = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, FieldRef):
            names.add(node.name)
        whole = whole or isinstance(node, InSegment)
        if is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, item.name) for item in dataclass_fields(node))
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return names, whole


@dataclass
class Fired:
    """What one firing pass did: occasions seen, new ones, messages queued, skips by reason."""

    occasions: int = 0
    new: int = 0
    queued: int = 0
    skipped: dict[str, int] | None = None

    def add(self, other: Fired) -> Fired:
        """Adds another pass's counts to these."""
        skipped = dict(self.skipped or {})
        for reason, count in (other.skipped or {}).items():
            skipped[reason] = skipped.get(reason, 0) + count
        return Fired(
            self.occasions + other.occasions,
            self.new + other.new,
            self.queued + other.queued,
            skipped,
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts as `--json` and the API print them."""
        return {
            "occasions": self.occasions,
            "fired": self.new,
            "queued": self.queued,
            "skipped": dict(sorted((self.skipped or {}).items())),
        }


def occasions_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Brings an occasions frame to OCCASION_SCHEMA (missing times null), extras kept."""
    casts = [
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in OCCASION_SCHEMA.items()
    ]
    return frame.with_columns(casts)


def _unfired(db_session: Session, trigger_id: int, occasions: pl.DataFrame) -> pl.DataFrame:
    """The occasions not recorded yet (one per member and key)."""
    occasions = occasions.unique(["member_id", "key"], keep="first", maintain_order=True)
    keys = occasions["key"].unique().to_list()
    if not keys:
        return occasions
    # By member too when few (an event batch): a key such as a cart's second is shared by
    # every member who carted then; a scheduler pass over everyone reads by key alone.
    members = occasions["member_id"].unique()
    among = " AND member_id IN :members" if members.len() <= HISTORY_BY_ID else ""
    query = text(
        f"SELECT member_id, key FROM trigger_firings WHERE trigger_id = :t AND key IN :keys{among}"
    ).bindparams(
        bindparam("keys", expanding=True),
        *([bindparam("members", expanding=True)] if among else []),
    )
    values = {"t": trigger_id, "keys": keys, **({"members": members.to_list()} if among else {})}
    rows = db_session.execute(query, values).all()
    done = pl.DataFrame(
        [tuple(row) for row in rows], schema={"member_id": pl.Int64, "key": pl.String}, orient="row"
    )
    return occasions.join(done, on=["member_id", "key"], how="anti", maintain_order="left")


def member_frame(
    engine: Engine,
    *,
    member_ids: Collection[int] | None,
    fields: Collection[str] | None,
    today: date,
) -> pl.DataFrame:
    """The members' audience fields, own timezone (the brand's when none) and phone hash."""
    zone = get_settings().default_timezone
    members = load_audience(engine, today=today, fields=fields, member_ids=member_ids)
    among = "" if member_ids is None else f" AND id IN ({_id_list(member_ids)})"
    zones = read_frame(
        engine,
        f"SELECT id AS member_id, timezone FROM members WHERE timezone IS NOT NULL{among}",
        schema={"member_id": pl.Int64, "timezone": pl.String},
    )
    members = members.join(zones, on="member_id", how="left", maintain_order="left")
    return members.with_columns(
        pl.col("timezone").replace("", None).fill_null(zone),
        phone_hash=sources.phone_hashes(members["phone"]),
    )


def _id_list(ids: Collection[int]) -> str:
    return ", ".join(str(int(i)) for i in ids) or "NULL"


def members_matching(
    engine: Engine, db_session: Session, rule: Rule, frame: pl.DataFrame, today: date
) -> pl.Series:
    """The member ids of `frame` a segment rule matches."""
    saved = saved_rules(db_session=db_session)
    lines = order_lines_snapshot(engine) if aggregates_used(rule, saved) else None
    return matching_ids(rule=rule, audience=frame, order_lines=lines, today=today, saved=saved)


def _conditioned(
    engine: Engine, db_session: Session, spec: FiringSpec, frame: pl.DataFrame, today: date
) -> pl.DataFrame:
    """Keeps the members the condition matches and the exit condition does not."""
    members = frame.unique("member_id", maintain_order=True)
    if spec.condition is not None:
        keep = members_matching(engine, db_session, spec.condition, members, today)
        frame = frame.filter(pl.col("member_id").is_in(keep.implode()))
    if spec.exit_condition is not None:
        gone = members_matching(engine, db_session, spec.exit_condition, members, today)
        frame = frame.filter(~pl.col("member_id").is_in(gone.implode()))
    return frame


def _trigger_step(frame: pl.DataFrame, trigger_id: int) -> pl.Expr:
    """The id the policy's one-per-run rule sees: the trigger's, or for a trigger of steps
    (`step`: a cart's 1 h and 24 h reminders) one per step, so both steps go in one run."""
    if "step" not in frame.columns:
        return pl.lit(trigger_id, dtype=pl.Int64)
    return pl.lit(trigger_id * STEPS_PER_TRIGGER, dtype=pl.Int64) + pl.col("step")


def _decided(
    frame: pl.DataFrame, spec: FiringSpec, *, engine: Engine, rules: PolicyRules, now: datetime
) -> pl.DataFrame:
    """Adds `_send_at` and `_reason` (null when the message goes) from the shared policy."""
    usable = ((pl.col("phone_status") == "ok") & pl.col("phone").is_not_null()).fill_null(False)
    frame = frame.with_row_index("_row").with_columns(_usable=usable)
    candidates = frame.filter(pl.col("_usable")).select(
        "member_id",
        "phone_hash",
        "consent",
        "tier",
        "lifecycle_stage",
        "timezone",
        "expires_at",
        desired_at=pl.col("desired_at").fill_null(pl.lit(now, dtype=UTC_TIME)),
        kind=pl.lit(POLICY_KIND[spec.message_kind].value),
        trigger_id=_trigger_step(frame, spec.trigger_id),
        offer_type=pl.lit(spec.offer_type, dtype=pl.String),
    )
    ids = candidates["member_id"].unique()
    few = ids.to_list() if ids.len() <= HISTORY_BY_ID else None
    history = sources.history(engine, campaign_id=0, rules=rules, now=now, member_ids=few)
    decided = decide(
        candidates, history=history, suppressions=sources.suppressions(engine), rules=rules, now=now
    )
    outcome = pl.DataFrame(
        {
            "_row": frame.filter(pl.col("_usable"))["_row"],
            "_send_at": decided["send_at"],
            "_policy": decided["reason"],
            "_skip": decided["decision"] == Decision.SKIP,
        }
    ).with_columns(_policy=pl.when(pl.col("_skip")).then(pl.col("_policy")))
    frame = frame.join(outcome, on="_row", how="left", maintain_order="left")
    reason = pl.when(~pl.col("_usable")).then(pl.lit(SkipReason.INVALID_PHONE.value))
    frame = frame.with_columns(_reason=reason.otherwise(pl.col("_policy")))
    return frame.drop("_row", "_policy", "_skip")


def _rendered(frame: pl.DataFrame, spec: FiringSpec) -> pl.DataFrame:
    """Adds `_text`, `_parts`, `_cost` for the going messages; a missing field or a blocked
    word becomes the skip reason."""
    settings = get_settings()
    scheme, price = counting_of(settings.default_provider, settings)
    lint = lint_rules(kind=CONTENT_KIND[spec.message_kind], scheme=scheme)
    going = frame.filter(pl.col("_reason").is_null()).with_row_index("_at")
    stopped = frame.filter(pl.col("_reason").is_not_null())
    if going.height == 0:
        return stopped.with_columns(_text=pl.lit(""), _parts=pl.lit(0), _cost=pl.lit(0))
    texts = checked_texts(
        going.with_columns(member_id=pl.col("_at").cast(pl.Int64)),
        spec.template,
        scheme=scheme,
        price_per_part_cents=price,
        lint=lint,
    ).rename({"member_id": "_at"})
    texts = texts.with_columns(pl.col("_at").cast(pl.UInt32))
    going = going.join(texts, on="_at", how="left").drop("_at")
    reason = (
        pl.when(pl.col("_missing").is_not_null())
        .then(pl.col("_missing"))
        .when(pl.col("_blocked").is_not_null())
        .then(pl.concat_str(pl.lit(BLOCKED_PREFIX), pl.col("_blocked")))
    )
    going = going.with_columns(_reason=reason.str.slice(0, REASON_LENGTH)).drop(
        "_missing", "_blocked"
    )
    return pl.concat([going, stopped], how="diagonal_relaxed")


def _rows(frame: pl.DataFrame, spec: FiringSpec, *, now: datetime) -> pl.DataFrame:
    """The message rows, with `key` and `event_at` kept for the firings."""
    settings = get_settings()
    going = pl.col("_reason").is_null()
    moment = pl.lit(now, dtype=UTC_TIME)
    return frame.select(
        "key",
        "event_at",
        dedupe_key=pl.format("trigger:{}:{}:{}", pl.lit(spec.trigger_id), "member_id", "key"),
        trigger_id=pl.lit(spec.trigger_id, dtype=pl.Int64),
        member_id="member_id",
        phone=pl.col("phone").fill_null(""),
        timezone="timezone",
        kind=pl.lit(spec.message_kind.value),
        offer_type=pl.lit(spec.offer_type, dtype=pl.String),
        priority=pl.lit(PRIORITY[spec.message_kind], dtype=pl.Int64),
        text=pl.when(going).then(pl.col("_text")).otherwise(pl.lit("")),
        parts=pl.when(going).then(pl.col("_parts")).otherwise(0).cast(pl.Int64),
        cost_cents=pl.when(going).then(pl.col("_cost")).otherwise(0).cast(pl.Int64),
        state=pl.when(going)
        .then(pl.lit(MessageState.QUEUED.value))
        .otherwise(pl.lit(MessageState.SKIPPED.value)),
        skip_reason="_reason",
        rollout_stage=pl.lit(0, dtype=pl.Int64),
        send_at=pl.coalesce("_send_at", "desired_at", moment),
        expires_at="expires_at",
        provider=pl.lit(settings.default_provider),
        attempts=pl.lit(0, dtype=pl.Int64),
        final_at=pl.when(going).then(pl.lit(None, dtype=UTC_TIME)).otherwise(moment),
        created_at=moment,
        updated_at=moment,
    )


def fire(
    db_session: Session,
    *,
    spec: FiringSpec,
    occasions: pl.DataFrame,
    now: datetime,
    members: pl.DataFrame | None = None,
) -> Fired:
    """Fires `spec` for each occasion not fired before; returns what it did.

    `members` (from `member_frame`) may be given when the caller read them already;
    otherwise the occasions' members are read. Never commits.
    """
    engine = db_session.get_bind()
    assert isinstance(engine, Engine), "triggers fire on a session bound to an engine"
    now = now.astimezone(UTC)
    occasions = occasions_frame(occasions)
    fresh = _unfired(db_session, spec.trigger_id, occasions)
    fired = Fired(occasions=occasions.height)
    if fresh.height == 0:
        return fired
    today = local_today()
    if members is None:
        ids = fresh["member_id"].unique().to_list()
        members = member_frame(engine, member_ids=ids, fields=spec.fields(), today=today)
    # What an occasion brings (a birthday's date, points expiring) wins over the audience's.
    overlap = [name for name in fresh.columns if name in members.columns and name != "member_id"]
    frame = fresh.join(members.drop(overlap), on="member_id", how="inner", maintain_order="left")
    frame = _conditioned(engine, db_session, spec, frame, today)
    if frame.height == 0:
        return fired
    rules = PolicyRules.from_settings(get_settings())
    frame = _rendered(_decided(frame, spec, engine=engine, rules=rules, now=now), spec)
    rows = _rows(frame, spec, now=now)
    write_firings(db_session, rows, now=now)
    skipped = rows.filter(pl.col("state") == MessageState.SKIPPED.value)
    reasons = skipped.group_by("skip_reason").len()
    return Fired(
        occasions=occasions.height,
        new=rows.height,
        queued=rows.height - skipped.height,
        skipped={str(reason): int(count) for reason, count in reasons.iter_rows()},
    )
