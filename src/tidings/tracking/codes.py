"""Short-link codes: seven base62 characters from a keyed hash of campaign and member.

A code is HMAC-SHA256(secret, "campaign:member:attempt"), its first 44 bits written in base62,
so planning a campaign twice gives each member the same code, codes follow no sequence, and
nobody without the secret can work out another member's code. Two members whose codes meet
(about once in ten campaigns of a million members) are told apart by the next attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

import polars as pl
import polars_hash as plh

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CODE_LENGTH = 7  # characters: 62**7 is about 3.5 million million codes
CODE_PATTERN = f"[0-9A-Za-z]{{{CODE_LENGTH}}}"  # a code as a message shows it, in a regex
HASH_HEX_DIGITS = 11  # 44 bits of the hash, a little more than 62**7 needs
MAX_ATTEMPTS = 8  # rounds of re-deriving codes that met; each round leaves ~1e-6 of them
WELL_FORMED = re.compile(r"[0-9A-Za-z]{4,16}")  # what a code in a URL may look like
_SPACE = len(ALPHABET) ** CODE_LENGTH


class CodeCollision(RuntimeError):
    """Codes still met after every attempt (the secret or the alphabet must be wrong)."""


def is_well_formed(code: str) -> bool:
    """Whether `code` could be a short-link code at all (checked before any look-up)."""
    return WELL_FORMED.fullmatch(code) is not None


def code_for(*, secret: str, campaign_id: int, member_id: int, attempt: int = 0) -> str:
    """The code of one member's link in one campaign (the same as `code_expr`)."""
    message = f"{campaign_id}:{member_id}:{attempt}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    number = int(digest[:HASH_HEX_DIGITS], 16) % _SPACE
    characters = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        characters.append(ALPHABET[digit])
    return "".join(characters)


def spells_any(code: str, avoid: Sequence[str]) -> bool:
    """Whether `code` spells one of the words to avoid (any case)."""
    lowered = code.lower()
    return any(word.lower() in lowered for word in avoid)


def with_codes(
    members: pl.DataFrame, *, secret: str, campaign_id: int, avoid: Sequence[str] = ()
) -> pl.DataFrame:
    """Adds `code` and `attempt` to a frame of distinct `member_id`s (as `code_for` makes
    them), every code different from the others and spelling none of the words in `avoid`
    (a code reading LSD would get its message stopped by the content check)."""
    frame = _coded(members.with_columns(attempt=pl.lit(0, dtype=pl.Int64)), secret, campaign_id)
    words = [word.lower() for word in avoid]
    for _ in range(MAX_ATTEMPTS):
        spelled = (
            pl.col("code").str.contains_any(words, ascii_case_insensitive=True)
            if words
            else pl.lit(False)
        )
        if frame["code"].n_unique() == frame.height and not frame.select(spelled.any()).item():
            return frame
        # Of the members sharing a code, the one with the fewest attempts (then the lowest
        # id) keeps it; the others, and codes spelling a word, derive their next code.
        shared = frame.filter(pl.col("code").is_duplicated() & ~spelled)
        keeper = shared.sort("attempt", "member_id").unique("code", keep="first")
        moved = pl.concat([shared.join(keeper, on="member_id", how="anti"), frame.filter(spelled)])
        again = _coded(moved.with_columns(attempt=pl.col("attempt") + 1), secret, campaign_id)
        frame = pl.concat(
            [frame.join(moved, on="member_id", how="anti"), again], how="vertical_relaxed"
        )
    raise CodeCollision(f"short-link codes of campaign {campaign_id} still meet")


def _coded(frame: pl.DataFrame, secret: str, campaign_id: int) -> pl.DataFrame:
    """`frame` with the `code` its `member_id` and `attempt` make."""
    message = pl.format("{}:{}:{}", pl.lit(campaign_id), "member_id", "attempt")
    number = (
        plh.col("_message")
        .chash.hmac_sha256(key=secret)
        .str.slice(0, HASH_HEX_DIGITS)
        .str.to_integer(base=16, dtype=pl.UInt64)
        % _SPACE
    )
    base = len(ALPHABET)
    alphabet = pl.lit(pl.Series(list(ALPHABET)))
    digits = [
        alphabet.gather(pl.col("_number") // base**place % base) for place in range(CODE_LENGTH)
    ]
    return (
        frame.with_columns(_message=message)
        .with_columns(_number=number)
        .with_columns(code=pl.concat_str(digits))
        .drop("_message", "_number")
    )
