"""Coupon codes: ten characters of a keyed hash and one check character.

The alphabet has 31 characters a person cannot confuse (no 0/O, 1/I/L): 2-9 and A-Z without
I, L and O. The last character makes sum(position x value) divisible by 31 over the whole
code (positions 1 to 11); as 31 is prime and the weights differ, one wrong character or two
neighbours swapped always break it. The body comes from SHA-256 of the brand's secret with
the campaign and member, so planning a campaign again gives each member the same code, and
nobody without the secret can derive a code from another. 31^10 (about 2^49) bodies make a
guessed code almost never exist.
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import polars as pl
import polars_hash as plh

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
BASE = len(ALPHABET)  # 31, a prime: the check character catches every single typo
BODY_LENGTH = 10
CODE_LENGTH = BODY_LENGTH + 1
_VALUES = {char: value for value, char in enumerate(ALPHABET)}
_CHECK_INVERSE = pow(CODE_LENGTH, -1, BASE)  # solves sum + 11 x check = 0 (mod 31)
_HASH_HEX_DIGITS = 13  # 52 bits, more than the 49.5 bits of ten base-31 characters
_MAX_SALTS = 16  # rounds of re-deriving duplicates; one round is already rare
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)


def check_char(body: str) -> str:
    """The check character of a ten-character body written in ALPHABET."""
    total = sum(position * _VALUES[char] for position, char in enumerate(body, start=1))
    return ALPHABET[(-total * _CHECK_INVERSE) % BASE]


def normalise(code: str) -> str:
    """A code as typed (any case, with spaces or dashes) in its stored form."""
    return "".join(code.split()).replace("-", "").upper()


def is_well_formed(code: str) -> bool:
    """Whether a (normalised) code has the right length, alphabet and check character."""
    if len(code) != CODE_LENGTH or any(char not in _VALUES for char in code):
        return False
    total = sum(position * _VALUES[char] for position, char in enumerate(code, start=1))
    return total % BASE == 0


def random_code() -> str:
    """A code from the system's random source, for coupons that belong to no campaign."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return body + check_char(body)


def keyed_code(secret: str, *parts: object) -> str:
    """The code `member_codes` derives for one set of parts (salt 0), computed in Python."""
    text = "|".join([secret, *(str(part) for part in parts), "0"])
    value = int(hashlib.sha256(text.encode()).hexdigest()[:_HASH_HEX_DIGITS], 16)
    body = ""
    for _ in range(BODY_LENGTH):
        value, digit = divmod(value, BASE)
        body += ALPHABET[digit]
    return body + check_char(body)


def _codes(keys: pl.Series) -> pl.Series:
    """Codes from a text column of hash inputs: SHA-256 in Polars, base-31 digits in numpy."""
    hashed = (
        keys.to_frame("key")
        .select(
            plh.col("key")
            .chash.sha2_256()
            .str.slice(0, _HASH_HEX_DIGITS)
            .str.to_integer(base=16, dtype=pl.Int64)
        )
        .to_series()
        .to_numpy()
    )
    digits = np.empty((hashed.shape[0], CODE_LENGTH), dtype=np.int64)
    for position in range(BODY_LENGTH):
        hashed, digits[:, position] = np.divmod(hashed, BASE)
    total = (digits[:, :BODY_LENGTH] * np.arange(1, CODE_LENGTH)).sum(axis=1)
    digits[:, BODY_LENGTH] = (-total * _CHECK_INVERSE) % BASE
    chars = np.ascontiguousarray(_ALPHABET_BYTES[digits])
    return pl.Series(chars.view(f"S{CODE_LENGTH}").ravel()).cast(pl.String)


def member_codes(secret: str, campaign_key: str, member_ids: pl.Series) -> pl.Series:
    """One code per member id, unique among them: the keyed hash of secret, campaign and
    member (`keyed_code`), re-derived with the next salt for the rare member whose code
    another member of the batch already has."""
    frame = pl.DataFrame({"member_id": member_ids.cast(pl.Int64)}).with_columns(
        pl.lit(0, dtype=pl.Int64).alias("salt")
    )
    prefix = f"{secret}|{campaign_key}|"
    key = pl.concat_str(
        pl.lit(prefix), pl.col("member_id").cast(pl.String), pl.lit("|"), pl.col("salt")
    )
    frame = frame.with_columns(code=_codes(frame.select(key).to_series()))
    for _ in range(_MAX_SALTS):
        later = pl.col("member_id").rank("ordinal").over("code") > 1
        if not frame["code"].is_duplicated().any():
            return frame["code"].rename("code")
        frame = frame.with_columns(pl.when(later).then(pl.col("salt") + 1).otherwise("salt"))
        again = frame.filter(later)
        fresh = again.with_columns(code=_codes(again.select(key).to_series()))
        frame = frame.update(fresh.select("member_id", "code", "salt"), on="member_id")
    raise RuntimeError("coupon codes kept clashing; the hash cannot be working")
