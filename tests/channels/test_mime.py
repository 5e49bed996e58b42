"""The lean MIME writer produces what a mail client reads back exactly, for every shape of message."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.message import EmailMessage as Parsed

import pytest

from envoi.channels.base import Attachment, EmailMessage
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


PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64


def test_attachments_follow_the_body_in_multipart_mixed() -> None:
    photo = bytes(reversed(range(256))) * 3
    message = EmailMessage(
        ref=1,
        sender="shop@example.com",
        to="ada@example.com",
        subject="Your invoice",
        html="<p>Bonjour Zoë</p>",
        text="Bonjour Zoë",
        attachments=(
            Attachment("invoice-42.pdf", "application/pdf", PDF),
            Attachment("photo.png", "image/png", photo),
            Attachment("notes.txt", "text/plain", b"Merci\r\n"),
        ),
    )
    raw = render_mime(message)
    parsed = parse(message)
    assert parsed.get_content_type() == "multipart/mixed"
    body, *files = parsed.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Bonjour Zoë\n"
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == "<p>Bonjour Zoë</p>\n"
    assert [(f.get_filename(), f.get_content_type(), f.get_content_disposition()) for f in files] == [
        ("invoice-42.pdf", "application/pdf", "attachment"),
        ("photo.png", "image/png", "attachment"),
        ("notes.txt", "text/plain", "attachment"),
    ]
    assert [f.get_payload(decode=True) for f in files] == [PDF, photo, b"Merci\r\n"]
    assert base64.encodebytes(PDF).replace(b"\n", b"\r\n") in raw  # base64 in lines of 76, CRLF


@pytest.mark.parametrize(("html", "text", "kind"), [("<b>hi</b>", None, "text/html"), (None, "hi", "text/plain")])
def test_attachment_beside_a_single_part_body(html: str | None, text: str | None, kind: str) -> None:
    parsed = parse(
        EmailMessage(
            ref=1,
            sender="a@example.com",
            to="b@example.com",
            subject="s",
            html=html,
            text=text,
            attachments=(Attachment("a.pdf", "application/pdf", PDF),),
        )
    )
    body, attachment = parsed.iter_parts()
    assert (body.get_content_type(), body.get_content().strip()) == (kind, html or text)
    assert attachment.get_payload(decode=True) == PDF


@pytest.mark.parametrize("filename", ["Facture n°42 — été.pdf", "報告書.xlsx", "Résumé " + "é" * 200 + ".pdf"])
def test_non_ascii_filename_round_trips(filename: str) -> None:
    parsed = parse(
        EmailMessage(
            ref=1, sender="a@example.com", to="b@example.com", subject="s", text="x",
            attachments=(Attachment(filename, "application/octet-stream", b"data"),),
        )
    )  # fmt: skip
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == filename  # RFC 2231 filename*, what current clients read
    assert attachment["Content-Type"].params["name"] == filename  # RFC 2047 name, what old Outlook reads
    assert attachment.get_payload(decode=True) == b"data"


def test_filename_and_type_cannot_inject_headers() -> None:
    raw = render_mime(
        EmailMessage(
            ref=1, sender="a@example.com", to="b@example.com", subject="s", text="x",
            attachments=(
                Attachment('x.pdf"\r\nBcc: victim@example.com\r\n\r\nboom', "text/plain\r\nBcc: v@example.com", b"1"),
            ),
        )
    )  # fmt: skip
    assert b"\r\nBcc:" not in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    [attachment] = parsed.iter_attachments()
    assert list(attachment.keys()) == ["Content-Type", "Content-Disposition", "Content-Transfer-Encoding"]
    assert attachment.get_filename() == "x.pdfBcc: victim@example.comboom"
    assert attachment.get_content_type() == "application/octet-stream"
    assert attachment.get_payload(decode=True) == b"1"
    assert parsed["Bcc"] is None


def test_very_long_filename_is_shortened_keeping_its_extension() -> None:
    parsed = parse(
        EmailMessage(
            ref=1, sender="a@example.com", to="b@example.com", subject="s", text="x",
            attachments=(Attachment("r" * 1000 + ".pdf", "application/pdf", b"data"),),
        )
    )  # fmt: skip
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == "r" * 251 + ".pdf"


def test_an_attachment_name_is_never_a_path() -> None:
    names = ["../../etc/x.pdf", "C:\\Users\\me\\y.pdf", "..", "dir/", ' "quoted".pdf ']
    assert [Attachment(n, "application/pdf", b"").filename for n in names] == [
        "x.pdf",
        "y.pdf",
        "attachment",
        "attachment",
        "quoted.pdf",
    ]
