"""SMPP's wire formats for texts: a message as submit_sm parts (GSM-7 or UCS-2, a UDH on each
part of a long one), a delivery receipt read from a deliver_sm, and a reply's text.

Parts are cut where the content domain counts them (`content.length.split_parts`: 160 or 153
septets, 70 or 67 UTF-16 units), so a member gets the number of parts the campaign paid for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from tidings.content.length import Encoding, encoding_of, split_parts

GSM7_CODING = 0x00  # data_coding: the SMSC's default alphabet, GSM 03.38
LATIN1_CODING = 0x03
UCS2_CODING = 0x08
UDHI = 0x40  # esm_class bit: short_message starts with a user data header
RECEIPT_TYPE_MASK = 0x3C  # esm_class bits 2-5: the message type of a deliver_sm
RECEIPT_TYPES = frozenset({0x04, 0x08, 0x10, 0x20})  # SMSC, SME, manual ack, intermediate
CONCAT_8BIT = 0x00  # UDH information element: concatenated message, 8-bit reference
CONCAT_16BIT = 0x08
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
STAT_STATUS = {  # the receipt's stat: field -> what became of the message
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
}
MESSAGE_STATE_STAT = {
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    7: "UNKNOWN",
    8: "REJECTD",
}
_FIELD = re.compile(r"(id|stat|err):(\S*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A text as the short_message of each submit_sm it goes out in."""

    data_coding: int
    esm_class: int
    parts: list[bytes]


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """A delivery receipt as read from a deliver_sm: whose it is and what became of it."""

    provider_message_id: str
    stat: str  # the SMSC's word: DELIVRD, UNDELIV, ...
    status: str | None  # delivered | failed | expired; None while not final (ACCEPTD, ENROUTE)
    error: str | None


def encode_message(text: str, reference: int) -> EncodedMessage:
    """Encodes `text` in GSM-7 when it fits that alphabet, else UCS-2, split with a UDH
    carrying `reference` (0-255) when it takes more than one part."""
    encoding = encoding_of(text)
    coding = GSM7_CODING if encoding is Encoding.GSM7 else UCS2_CODING
    codec = "gsm03.38" if encoding is Encoding.GSM7 else "utf-16-be"
    pieces = split_parts(text) or [""]
    if len(pieces) == 1:
        return EncodedMessage(coding, 0, [pieces[0].encode(codec)])
    total = len(pieces)
    parts = [
        bytes((5, CONCAT_8BIT, 3, reference & 0xFF, total, number)) + piece.encode(codec)
        for number, piece in enumerate(pieces, start=1)
    ]
    return EncodedMessage(coding, UDHI, parts)


def is_receipt(esm_class: int) -> bool:
    """True when a deliver_sm is a receipt rather than a member's reply."""
    return esm_class & RECEIPT_TYPE_MASK in RECEIPT_TYPES


def read_receipt(short_message: bytes, tlvs: Sequence[tuple[int, bytes]]) -> ReadReceipt | None:
    """Reads a receipt: the receipted_message_id and message_state TLVs where present (SMPP
    3.4 defines them), else the `id:... stat:... err:...` text; None when it names no id."""
    text = short_message.decode("latin-1")
    fields = {key.lower(): value for key, value in _FIELD.findall(text)}
    values = dict(tlvs)
    provider_id = fields.get("id", "")
    if TLV_RECEIPTED_MESSAGE_ID in values:
        provider_id = values[TLV_RECEIPTED_MESSAGE_ID].rstrip(b"\x00").decode("latin-1")
    stat = fields.get("stat", "").upper()
    if not stat and TLV_MESSAGE_STATE in values:
        stat = MESSAGE_STATE_STAT.get(int.from_bytes(values[TLV_MESSAGE_STATE], "big"), "")
    if not provider_id:
        return None
    status = STAT_STATUS.get(stat)
    err = fields.get("err")
    error = None
    if status != "delivered":
        error = stat if not err or err.strip("0") == "" else f"{stat}:{err}"
    return ReadReceipt(provider_id, stat, status, error[:64] if error else None)


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """A member's reply, or one part of a long one: its concatenation header and text."""

    text: str
    reference: int | None = None
    total: int = 1
    number: int = 1


def read_reply(short_message: bytes, *, data_coding: int, esm_class: int) -> ReplyPart:
    """Decodes a reply's text by its data_coding, taking off a concatenation UDH if any."""
    body, reference, total, number = short_message, None, 1, 1
    if esm_class & UDHI and short_message:
        header_length = short_message[0]
        header, body = short_message[1 : 1 + header_length], short_message[1 + header_length :]
        reference, total, number = _concatenation(header)
    if data_coding == UCS2_CODING:
        text = body.decode("utf-16-be", errors="replace")
    elif data_coding == LATIN1_CODING:
        text = body.decode("latin-1")
    else:
        text = body.decode("gsm03.38", errors="replace")
    return ReplyPart(text, reference, total, number)


def _concatenation(header: bytes) -> tuple[int | None, int, int]:
    """(reference, parts, number) from a UDH's concatenation element; (None, 1, 1) if none."""
    index = 0
    while index + 2 <= len(header):
        element, length = header[index], header[index + 1]
        value = header[index + 2 : index + 2 + length]
        if element == CONCAT_8BIT and length == 3:
            return value[0], value[1], value[2]
        if element == CONCAT_16BIT and length == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        index += 2 + length
    return None, 1, 1
