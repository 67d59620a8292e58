"""The token of a member's preference page link, `/p/{token}`: short enough for an SMS, and
made for a million members at once with Polars expressions (the keyed hash included).

A token is the member's id and the day it was made (days since 1970, five digits), then a
signature: 48 bits of HMAC-SHA256(secret, "preference:{member}:{day}") in URL-safe base64,
eight characters. About twenty characters for a million members, where a general-purpose
signed token takes forty; nobody without the secret can make another member's token, and
the day lets a link expire. The id and day are digits and never spell a word; a signature
that spells one of the words the content check stops (`avoid`, e.g. LSD, read as the check
reads it, so l_sD too) is taken from the next 48 bits of the same hash instead, and the
reader accepts any of the first few.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import polars as pl
import polars_hash  # noqa: F401  (adds the `chash` namespace to expressions)

from tidings import clock, keys

if TYPE_CHECKING:
    from tidings.config import Settings

DAY_DIGITS = 5  # decimal digits of the day made: days since 1970 stay five digits until 2243
SIGNATURE_BYTES = 6  # 48 bits, eight base64 characters
WINDOWS = 3  # 48-bit stretches of the hash a signature may be: three spelling a word ~1e-9
LINK_PATH = "/p/"
WELL_FORMED = re.compile(rf"([0-9]{{1,19}})([0-9]{{{DAY_DIGITS}}})([0-9A-Za-z_-]{{8}})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX = SIGNATURE_BYTES * 2
_CHARS = SIGNATURE_BYTES * 4 // 3


def day_number(moment: datetime) -> int:
    """The day of `moment` (UTC) counted from 1970-01-01."""
    return (moment.astimezone(UTC) - _EPOCH).days


def _signatures(member_id: int, day: int, secret: str) -> list[str]:
    """The signatures a token of the member and day may carry, the first preferred."""
    message = f"preference:{member_id}:{day}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    stretches = (digest[i * SIGNATURE_BYTES : (i + 1) * SIGNATURE_BYTES] for i in range(WINDOWS))
    return [base64.urlsafe_b64encode(stretch).decode() for stretch in stretches]


def _spells(text: str, avoid: Sequence[str]) -> bool:
    """Whether `text` spells a word as the content check reads it (l_sD reads LSD)."""
    from tidings.content.words import normalize_term  # words.py renders through this module

    seen = normalize_term(text).lower()
    return any(normalize_term(word).lower() in seen for word in avoid)


def token_for(member_id: int, *, secret: str, day: int, avoid: Sequence[str] = ()) -> str:
    """One member's token made on `day` (the same as `token_expr`)."""
    signatures = _signatures(member_id, day, secret)
    fitting = [s for s in signatures if not _spells(s, avoid)]
    return f"{member_id}{day:0{DAY_DIGITS}d}" + (fitting or signatures)[0]


def read_token(token: str, *, secret: str) -> tuple[int, int] | None:
    """The (member id, day made) a token names, or None when it is malformed or forged."""
    match = WELL_FORMED.fullmatch(token)
    if match is None:
        return None
    member_id, day, given = int(match.group(1)), int(match.group(2)), match.group(3)
    if any(hmac.compare_digest(s, given) for s in _signatures(member_id, day, secret)):
        return member_id, day
    return None


def token_expr(member_id: pl.Expr, *, secret: str, day: int, avoid: Sequence[str] = ()) -> pl.Expr:
    """Each member's token made on `day`, as Polars computes it (no Python call per row)."""
    member = member_id.cast(pl.Int64)
    message = pl.format("preference:{}:{}", member, pl.lit(day))
    # polars_hash registers `chash` on every expression; its typing knows it on plh.col only.
    digest = cast(Any, message).chash.hmac_sha256(key=secret)
    # Six bytes are exactly eight base64 characters: one encoding gives every stretch.
    encoded = (
        digest.str.slice(0, WINDOWS * _HEX)
        .str.decode("hex")
        .bin.encode("base64")
        .str.replace_many(["+", "/"], ["-", "_"])
    )
    stretches = [encoded.str.slice(i * _CHARS, _CHARS) for i in range(WINDOWS)]
    signature = stretches[0]
    if avoid:
        from tidings.content.words import normalize_term

        words = [normalize_term(word).lower() for word in avoid]
        signature = stretches[-1]
        for stretch in reversed(stretches[:-1]):
            # The content check reads these characters case-blind and skips - and _ (l_sD
            # is LSD): `normalize_expr` on this alphabet, at a fraction of its cost.
            seen = stretch.str.replace_all("[-_]", "")
            spelled = seen.str.contains_any(words, ascii_case_insensitive=True)
            signature = pl.when(spelled).then(signature).otherwise(stretch)
    return pl.concat_str(pl.format("{}{}", member, pl.lit(f"{day:0{DAY_DIGITS}d}")), signature)


@dataclass(frozen=True)
class LinkSigning:
    """What a link is made with: the address served, the key, the day and the words to avoid."""

    base: str
    secret: str
    day: int
    avoid: tuple[str, ...] = ()


def link_signing(settings: Settings, *, now: datetime | None = None) -> LinkSigning:
    """How members' links are made today: the address served, the key and the words a
    signature must not spell (the content check would stop a message showing them)."""
    from tidings.content.words import word_matcher  # words.py renders through this module

    words = word_matcher().by_key
    return LinkSigning(
        base=settings.short_link_base,
        secret=keys.secret(settings, "preference"),
        day=day_number(now or clock.now()),
        avoid=tuple(sorted(word for word in words if word.isascii() and word.isalnum())),
    )


def link_expr(member_id: pl.Expr, signing: LinkSigning) -> pl.Expr:
    """Each member's preference page link, `{base}/p/{token}`; null where the id is."""
    token = token_expr(member_id, secret=signing.secret, day=signing.day, avoid=signing.avoid)
    return pl.concat_str(pl.lit(signing.base + LINK_PATH), token)


def link_for(member_id: int, signing: LinkSigning) -> str:
    """One member's preference page link (the same as `link_expr`)."""
    token = token_for(member_id, secret=signing.secret, day=signing.day, avoid=signing.avoid)
    return signing.base + LINK_PATH + token
