"""Verification codes: drawn with `secrets`, kept only as a keyed hash, compared in constant
time, and masked wherever a message's text is shown."""

from __future__ import annotations

import hashlib
import hmac
import secrets

MASK = "•"  # stands for each digit of a code in any text shown back


def new_code(digits: int) -> str:
    """A random code of `digits` decimal digits (leading zeros kept)."""
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def new_public_id() -> str:
    """An unguessable id for a verification, used in its check URL."""
    return secrets.token_urlsafe(12)


def code_hash(code: str, *, public_id: str, secret: str) -> str:
    """The keyed hash (HMAC-SHA256) a code is stored as, bound to its verification."""
    message = f"{public_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def code_matches(code: str, *, public_id: str, secret: str, stored: str) -> bool:
    """Whether `code` is the one whose hash is `stored` (constant time)."""
    candidate = code_hash(code.strip(), public_id=public_id, secret=secret)
    return hmac.compare_digest(candidate, stored)


def masked(text: str, code: str) -> str:
    """`text` with every occurrence of `code` replaced by mask characters."""
    return text.replace(code, MASK * len(code)) if code else text
