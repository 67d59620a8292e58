"""The policy's decisions on transactional messages, remembered for the minute they hold in.

A transactional message, or an urgent one (decided as a reply), meets only suppression and
quiet hours: it needs no consent and has no caps, cool-downs or campaign. So `decide` answers
every such candidate with the same kind, timezone and suppression reasons alike within one
minute, since windows and quiet hours are whole minutes: send at once, wait for the same
opening, or skip for the same reason. The intake asks `decide` once a minute for each such
combination rather than once a batch: Polars' fixed cost per call was most of a small
batch's time. tests/notifications/test_decisions.py holds the two answers equal.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from tidings.config import Settings
from tidings.policy.decide import HISTORY_REQUIRED, Decision, decide
from tidings.policy.rules import PolicyRules

UTC_TIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Situation:
    """What the policy reads of a transactional candidate."""

    kind: str  # a CandidateKind: transactional, or reply for an urgent message
    timezone: str
    suppressed: tuple[str, ...]  # the phone's suppression reasons, sorted


@dataclass(frozen=True)
class Decided:
    """The policy's answer for one message: decision, send time (None if skipped), reason."""

    decision: str
    send_at: datetime | None
    reason: str | None


def decide_now(
    situations: Sequence[Situation], *, rules: PolicyRules, now: datetime
) -> list[Decided]:
    """Asks `decide` for each situation, a candidate apiece desired at `now`."""
    hashes = [f"situation-{i}" for i in range(len(situations))]
    candidates = pl.DataFrame(
        {
            "member_id": [-(i + 1) for i in range(len(situations))],
            "phone_hash": hashes,
            "kind": [s.kind for s in situations],
            "desired_at": [now] * len(situations),
            "timezone": [s.timezone for s in situations],
        },
        schema_overrides={"desired_at": UTC_TIME, "member_id": pl.Int64},
    )
    suppressions = pl.DataFrame(
        [(h, reason) for h, s in zip(hashes, situations, strict=True) for reason in s.suppressed],
        schema={"phone_hash": pl.String, "reason": pl.String},
        orient="row",
    )
    decided = decide(
        candidates,
        history=pl.DataFrame(schema=HISTORY_REQUIRED),
        suppressions=suppressions,
        rules=rules,
        now=now,
    )
    return [
        Decided(row["decision"], row["send_at"], row["reason"])
        for row in decided.select("decision", "send_at", "reason").iter_rows(named=True)
    ]


class DecisionMemo:
    """The decisions of the current minute by situation, and the rules of the settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: Settings | None = None
        self._rules: PolicyRules | None = None
        self._minute: datetime | None = None
        self._known: dict[Situation, Decided] = {}

    def decide(
        self, situations: Sequence[Situation], *, settings: Settings, now: datetime
    ) -> list[Decided]:
        """The decision for each situation at `now`; `decide` is asked only what this
        minute has not asked yet under these settings."""
        minute = now.replace(second=0, microsecond=0)
        with self._lock:
            if settings is not self._settings or minute != self._minute:
                self._settings, self._minute, self._known = settings, minute, {}
                self._rules = PolicyRules.from_settings(settings)
            assert self._rules is not None
            missing = sorted(set(situations) - self._known.keys(), key=repr)
            if missing:
                answers = decide_now(missing, rules=self._rules, now=now)
                self._known.update(zip(missing, answers, strict=True))
            known = self._known
        # Sent as asked means sent now: this request's now, not the first one's.
        return [
            Decided(Decision.SEND, now, None) if decided.decision == Decision.SEND else decided
            for decided in (known[situation] for situation in situations)
        ]
