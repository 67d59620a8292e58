"""How often codes may be asked for: per phone and per client address, with `limits` (in
memory for one process, in Redis when TIDINGS_REDIS_URL is set, so that every process
counts together)."""

from __future__ import annotations

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from tidings.config import Settings
from tidings.members.phone import classify
from tidings.notifications.models import NotificationKind
from tidings.notifications.schemas import MessageCreate


class VerificationLimits:
    """The limits on verification codes per phone and on requests per client address."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.storage = storage or storage_from_string(settings.redis_url or "memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_phone = _rules(settings.verification_limit_per_phone, "per_phone")
        self.per_ip = _rules(settings.verification_limit_per_ip, "per_ip")
        self.region = settings.default_region

    def _hit(self, rules: list[RateLimitItem], *key: str) -> RateLimitItem | None:
        """Counts one use against every rule; returns the first rule that refuses it."""
        refused = [rule for rule in rules if not self.limiter.test(rule, *key)]
        if refused:
            return refused[0]
        for rule in rules:
            self.limiter.hit(rule, *key)
        return None

    def phone_refusal(self, request: MessageCreate) -> str | None:
        """Why a verification may not be sent to its phone now, or None (notices pass)."""
        if request.kind is not NotificationKind.VERIFICATION:
            return None
        if request.phone is None:
            key = f"member:{request.member_id}"
        else:
            key = classify(request.phone, region=self.region)[0] or request.phone
        rule = self._hit(self.per_phone, "verification-phone", key)
        if rule is None:
            return None
        return f"too many codes for this phone: at most {_said(rule)}; try again later"

    def address_refusal(self, address: str) -> str | None:
        """Why a client address may not ask for or check another code now, or None."""
        rule = self._hit(self.per_ip, "verification-ip", address)
        if rule is None:
            return None
        return f"too many verification requests from this address: at most {_said(rule)}"


def _rules(text: str, name: str) -> list[RateLimitItem]:
    try:
        return list(parse_many(text.replace(";", ",")))
    except ValueError:
        raise ValueError(
            f"TIDINGS_VERIFICATION_LIMIT_{name.upper()}: '{text}' is not a rate such as"
            " 1/minute;5/hour"
        ) from None


def _said(rule: RateLimitItem) -> str:
    unit = rule.GRANULARITY.name
    each = f"{rule.multiples} {unit}s" if rule.multiples > 1 else unit
    return f"{rule.amount} per {each}"
