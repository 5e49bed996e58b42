"""The lean MIME writer produces what a mail client reads back exactly, for every shape of message."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage as Parsed

import pytest

from envoi.channels.base import EmailMessage
from envoi.channels.mime import render_mime


def parse(message: EmailMessage) -> Parsed:
    raw = render_mime(message)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, Parsed)
    assert not parsed.defects
    return parsed


def test_multipart_with_unicode_everywhere() -> None:
    long_line = "é" * 1500
    parsed = parse(
        EmailMessage(
            ref=1,
            sender="Zoë Boutique <shop@example.com>",
            to="ada@example.com",
            reply_to="Service client <help@example.com>",
            subject="Commande n°42 — merci Zoë " + " ".join(["très"] * 40),
            html=f"<p>Bonjour Zoë</p>\n<p>{long_line}</p>",
            text=f"Bonjour Zoë\r\n{long_line}",
            message_id="<1.2@envoi.test>",
            headers={"X-Envoi-Event": "1"},
        )
    )
    assert parsed["From"] == "Zoë Boutique <shop@example.com>"
    assert parsed["Reply-To"] == "Service client <help@example.com>"
    assert parsed["Subject"] == "Commande n°42 — merci Zoë " + "très " * 39 + "très"
    assert parsed["Message-ID"] == "<1.2@envoi.test>"
    assert parsed["X-Envoi-Event"] == "1"
    assert parsed["Date"] is not None
    assert parsed.get_content_type() == "multipart/alternative"
    # Quoted-printable keeps the canonical CRLF line breaks of text (RFC 2045); clients show them as lines.
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == f"Bonjour Zoë\n{long_line}\n"
    html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html == f"<p>Bonjour Zoë</p>\n<p>{long_line}</p>\n"


@pytest.mark.parametrize(("html", "text", "kind"), [("<b>hi</b>", None, "text/html"), (None, "hi", "text/plain")])
def test_single_part(html: str | None, text: str | None, kind: str) -> None:
    parsed = parse(EmailMessage(ref=1, sender="a@example.com", to="b@example.com", subject="s", html=html, text=text))
    assert parsed.get_content_type() == kind
    assert parsed.get_content().strip() == (html or text)


def test_long_ascii_subject_is_folded_and_read_back_whole() -> None:
    subject = " ".join(f"word{i}" for i in range(300))
    parsed = parse(EmailMessage(ref=1, sender="a@example.com", to="b@example.com", subject=subject, text="x"))
    assert parsed["Subject"] == subject
