"""Why a message was skipped or deferred: the reason codes and the sentences that explain them.

Every text a person reads about a policy decision lives here, so that reports, the console
and `explain` say the same thing in the same words.
"""

from __future__ import annotations

from enum import StrEnum


class SkipReason(StrEnum):
    """Why a candidate message was skipped, or for a deferred one, why it waits."""

    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    COMPLAINED = "complained"
    INVALID_PHONE = "invalid_phone"
    ERASED = "erased"
    DUPLICATE_IN_CAMPAIGN = "duplicate_in_campaign"
    DUPLICATE_IN_TRIGGER = "duplicate_in_trigger"
    FREQUENCY_CAP = "frequency_cap"
    LOST_TO_PRIORITY = "lost_to_priority"
    OFFER_COOLDOWN = "offer_cooldown"
    OUTSIDE_SEND_WINDOW = "outside_send_window"
    QUIET_HOURS = "quiet_hours"
    PUBLIC_HOLIDAY = "public_holiday"
    EXPIRED = "expired"


# One plain sentence per reason, as a report or a list of skipped messages shows it.
REASON_SENTENCES: dict[SkipReason, str] = {
    SkipReason.NO_CONSENT: "They have not opted in to marketing messages.",
    SkipReason.OPTED_OUT: "They opted out of marketing messages.",
    SkipReason.COMPLAINED: "They complained about our messages, so they get none at all.",
    SkipReason.INVALID_PHONE: "Their phone number is known to be invalid.",
    SkipReason.ERASED: "Their data was erased at their request.",
    SkipReason.DUPLICATE_IN_CAMPAIGN: (
        "They already get a message from this campaign; one per member per campaign."
    ),
    SkipReason.DUPLICATE_IN_TRIGGER: "This trigger already fires for them in the same run.",
    SkipReason.FREQUENCY_CAP: "They already had as many marketing messages as their cap allows.",
    SkipReason.LOST_TO_PRIORITY: "A message of higher priority took their last free slot.",
    SkipReason.OFFER_COOLDOWN: "They had an offer of the same type too recently.",
    SkipReason.OUTSIDE_SEND_WINDOW: "The time asked for is outside the send window.",
    SkipReason.QUIET_HOURS: "The time asked for is within quiet hours.",
    SkipReason.PUBLIC_HOLIDAY: "No marketing is sent on public holidays.",
    SkipReason.EXPIRED: "The message would expire before it may be sent.",
}

# Sentences with the facts behind a decision, filled in by `explain`.
FACT_SENTENCES: dict[SkipReason, str] = {
    SkipReason.NO_CONSENT: "they have not opted in to marketing messages",
    SkipReason.OPTED_OUT: "they opted out of marketing",
    SkipReason.COMPLAINED: "they complained about our messages, so they get none at all",
    SkipReason.INVALID_PHONE: "their phone number is known to be invalid",
    SkipReason.ERASED: "their data was erased at their request",
    SkipReason.DUPLICATE_IN_CAMPAIGN: (
        "they already get this campaign's message{when} (their segments overlap; "
        "one message per member per campaign)"
    ),
    SkipReason.DUPLICATE_IN_TRIGGER: "this trigger already fires for them in the same run",
    SkipReason.FREQUENCY_CAP: (
        "they already had {count} {counted} in the last {days} days (the cap for {who}), "
        "the latest on {latest}"
    ),
    SkipReason.LOST_TO_PRIORITY: (
        "a message of higher priority took the last of the {limit} {counted} allowed in "
        "{days} days (the cap for {who}){latest}"
    ),
    SkipReason.OFFER_COOLDOWN: (
        "they had a '{offer}' offer on {latest}, and the same offer type waits {days} days"
    ),
    SkipReason.OUTSIDE_SEND_WINDOW: ("{local} is outside the send window {window} in {timezone}"),
    SkipReason.QUIET_HOURS: "{local} is within quiet hours {quiet} in {timezone}",
    SkipReason.PUBLIC_HOLIDAY: "{day} is a public holiday ({holiday}) in {timezone}",
    SkipReason.EXPIRED: "{cause}, and the next opening is after the message expires",
}

# How a decision opens when explained.
SENT_SENTENCE = "It goes at {at} ({timezone}): no rule holds it back."
DEFERRED_SENTENCE = "It waits until {at} ({timezone}): {facts}."
SKIPPED_SENTENCE = "It was not sent: {facts}."
NO_WINDOW_CAUSE = "the time asked for"
