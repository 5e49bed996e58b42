"""SMS encoding: GSM-7 when every character has a code, else UCS-2; long texts in parts that never split a
character."""

from __future__ import annotations

import pytest

from envoi.channels.sms import decode_sms, encode_sms, with_udh


@pytest.mark.parametrize(
    ("text", "encoding", "sizes"),
    [
        ("Your code is 1234", "GSM-7", [17]),
        ("x" * 160, "GSM-7", [160]),
        ("x" * 161, "GSM-7", [153, 8]),
        ("x" * 400, "GSM-7", [153, 153, 94]),
        ("€" * 80, "GSM-7", [160]),  # two septets each: exactly one message
        ("x" * 152 + "[" + "x" * 10, "GSM-7", [152, 12]),  # the escape and its character stay together
        ("Привет", "UCS-2", [12]),
        ("П" * 70, "UCS-2", [140]),
        ("П" * 71, "UCS-2", [134, 8]),
        ("😀" * 40, "UCS-2", [132, 28]),  # surrogate pairs are never split
        ("Ça coûte 5€", "UCS-2", [22]),  # û has no GSM-7 code: the whole text goes in UCS-2
    ],
)
def test_alphabet_and_parts(text: str, encoding: str, sizes: list[int]) -> None:
    encoded = encode_sms(text)
    assert encoded.encoding == encoding
    assert [len(part) for part in encoded.parts] == sizes
    assert "".join(decode_sms(part, encoded.data_coding) for part in encoded.parts) == text


def test_gsm7_covers_french_and_german_accents_it_has() -> None:
    assert encode_sms("Ça va, Émile ? Schön, Müller! 5€ {ok}").encoding == "GSM-7"


def test_concatenation_headers_number_the_parts() -> None:
    parts = with_udh([b"a", b"b", b"c"], reference=300)
    assert parts == [b"\x05\x00\x03\x2c\x03\x01a", b"\x05\x00\x03\x2c\x03\x02b", b"\x05\x00\x03\x2c\x03\x03c"]
    assert with_udh([b"single"], reference=1) == [b"single"]
