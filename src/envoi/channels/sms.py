"""SMS text: the GSM 03.38 7-bit alphabet or UCS-2, chosen from the text, and long texts split into parts that
phones put back together (concatenation with a user data header).

GSM-7 is sent unpacked, one septet per octet (SMPP ``data_coding`` 0, the SMSC's default alphabet); a single
message holds 160 septets, a part of a long one 153. UCS-2 (``data_coding`` 8, UTF-16BE) holds 70 characters,
67 per part. Characters of the extension table (``€ [ ] { } | ^ ~ \\`` and form feed) take two septets and are
never split from their escape; surrogate pairs are never split either.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

# The basic character set, by code (0x00-0x7F); 0x1B is the escape to the extension table.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40}
_EXTENSION["€"] = 0x65
_GSM7 = {char: bytes([code]) for code, char in enumerate(_BASIC) if code != 0x1B}
_GSM7 |= {char: bytes([0x1B, code]) for char, code in _EXTENSION.items()}
_GSM7_DECODE = {value: char for char, value in _GSM7.items()}

GSM7_DATA_CODING = 0x00
UCS2_DATA_CODING = 0x08
_UDH_LENGTH = 6  # 05 00 03 <reference> <total> <sequence>
_SINGLE_OCTETS = 140  # a whole short message: 160 septets packed, or 140 octets of UCS-2
_PART_GSM7 = 153
_PART_UCS2_OCTETS = _SINGLE_OCTETS - _UDH_LENGTH


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """A rendered SMS, ready for a provider. ``to`` is E.164 (``+33612345678``); ``ref`` is only for logs."""

    ref: int
    to: str
    text: str
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class SmsEncoding:
    """How a text goes out: its alphabet and the user data of each part (without the header)."""

    encoding: Literal["GSM-7", "UCS-2"]
    data_coding: int
    parts: list[bytes]

    @property
    def segments(self) -> int:
        return len(self.parts)


def encode_sms(text: str) -> SmsEncoding:
    """The text in GSM-7 if every character has a GSM code, else UCS-2; split into parts when too long."""
    septets = _gsm7_chars(text)
    if septets is not None:
        if sum(map(len, septets)) <= 160:
            return SmsEncoding("GSM-7", GSM7_DATA_CODING, [b"".join(septets)])
        return SmsEncoding("GSM-7", GSM7_DATA_CODING, _fill(septets, _PART_GSM7))
    units = [char.encode("utf-16-be") for char in text]  # a character outside the BMP is one surrogate pair
    if sum(map(len, units)) <= _SINGLE_OCTETS:
        return SmsEncoding("UCS-2", UCS2_DATA_CODING, [b"".join(units)])
    return SmsEncoding("UCS-2", UCS2_DATA_CODING, _fill(units, _PART_UCS2_OCTETS))


def _gsm7_chars(text: str) -> list[bytes] | None:
    found = []
    for char in text:
        code = _GSM7.get(char)
        if code is None:
            return None
        found.append(code)
    return found


def _fill(pieces: list[bytes], size: int) -> list[bytes]:
    """Parts of at most ``size`` octets, never splitting a piece (an escaped character, a surrogate pair)."""
    parts: list[bytes] = []
    current = b""
    for piece in pieces:
        if len(current) + len(piece) > size:
            parts.append(current)
            current = b""
        current += piece
    return [*parts, current]


def with_udh(parts: list[bytes], reference: int) -> list[bytes]:
    """Each part prefixed with the concatenation header (8-bit reference); send with ``esm_class`` 0x40."""
    if len(parts) == 1:
        return parts
    if len(parts) > 255:
        raise ValueError("an SMS can have at most 255 parts")
    total = len(parts)
    return [bytes([5, 0, 3, reference & 0xFF, total, n]) + part for n, part in zip(itertools.count(1), parts)]


def decode_sms(data: bytes, data_coding: int) -> str:
    """The text of one part's user data (without its header), for tests and delivery receipts."""
    if data_coding == UCS2_DATA_CODING:
        return data.decode("utf-16-be")
    chars, escaped = [], False
    for octet in data:
        if escaped:
            chars.append(_GSM7_DECODE.get(bytes([0x1B, octet]), "?"))
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            chars.append(_GSM7_DECODE.get(bytes([octet]), "?"))
    return "".join(chars)
