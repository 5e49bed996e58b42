"""Turn a rendered email into RFC 5322 bytes, directly.

The standard library's ``EmailMessage`` costs about a millisecond per message to build and as much again to
flatten, most of a worker's CPU budget; this writer emits the same structure (multipart/alternative, UTF-8,
quoted-printable where needed, RFC 2047 headers) in a few tens of microseconds. Attachments wrap that body in
multipart/mixed, as base64 parts.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from email.utils import formataddr, formatdate, parseaddr
from urllib.parse import quote

from envoi.channels.base import Attachment, EmailMessage

_MAX_LINE = 998


class _DateCache:
    """``formatdate`` once a second, not once a message."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


def _encoded_words(value: str) -> str:
    """RFC 2047 base64 encoded words of at most 75 characters, split on character boundaries."""
    words, chunk = [], ""
    for char in value:
        if len((chunk + char).encode()) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _fold(value: str) -> str:
    """Long ASCII header values are folded at spaces so that no line passes 998 characters."""
    if len(value) <= 900:
        return value
    lines, line = [], ""
    for word in value.split(" "):
        if line and len(line) + len(word) + 1 > 76:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def header_text(value: str) -> str:
    return _fold(value) if value.isascii() else _encoded_words(value)


def header_address(value: str) -> str:
    if value.isascii():
        return value
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8")


def _body(text: str, subtype: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n")
    if not data.endswith("\n"):
        data += "\n"  # as the standard library does: a part's text ends with a line break
    head = f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: "
    if data.isascii() and all(len(line) <= _MAX_LINE for line in data.split("\n")):
        return (head + "7bit\r\n\r\n" + data.replace("\n", "\r\n")).encode()
    encoded = binascii.b2a_qp(data.encode(), istext=True).replace(b"\n", b"\r\n")
    return (head + "quoted-printable\r\n\r\n").encode() + encoded


def _content(message: EmailMessage) -> bytes:
    """The body, its Content-Type first: text and HTML as multipart/alternative (text first), or the one part."""
    if message.text is not None and message.html is not None:
        boundary = f"=_envoi_{uuid.uuid4().hex}"
        delimiter = f"--{boundary}\r\n".encode()
        return b"".join(
            (
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
                delimiter,
                _body(message.text, "plain"),
                b"\r\n",  # the line break before a delimiter belongs to the delimiter, not to the text
                delimiter,
                _body(message.html, "html"),
                b"\r\n",
                f"--{boundary}--\r\n".encode(),
            )
        )
    if message.text is not None:
        return _body(message.text, "plain")
    return _body(message.html or "", "html")


def render_mime(message: EmailMessage) -> bytes:
    """The message as sent: its body (see ``_content``), in multipart/mixed with the attachments if it has any."""
    headers = [
        f"From: {header_address(message.sender)}",
        f"To: {header_address(message.to)}",
    ]
    if message.reply_to:
        headers.append(f"Reply-To: {header_address(message.reply_to)}")
    headers.append(f"Subject: {header_text(message.subject)}")
    headers.append(f"Date: {_DateCache.now()}")
    if message.message_id:
        headers.append(f"Message-ID: {message.message_id}")
    headers.extend(f"{name}: {header_text(value)}" for name, value in message.headers.items())
    headers.append("MIME-Version: 1.0\r\n")
    if message.attachments:
        return "\r\n".join(headers).encode() + _mixed(message)
    return "\r\n".join(headers).encode() + _content(message)


def _mixed(message: EmailMessage) -> bytes:
    boundary = f"=_envoi_{uuid.uuid4().hex}"
    delimiter = f"\r\n--{boundary}\r\n".encode()
    parts = [f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()]
    parts.append(_content(message))
    for attachment in message.attachments:
        parts += (delimiter, _attachment(attachment))
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts)


def _attachment(attachment: Attachment) -> bytes:
    name, media_type = attachment.filename, attachment.content_type  # made safe when the Attachment was built
    if name.isascii() and len(name) <= 200:
        type_name, disposition = f'name="{name}"', f'filename="{name}"'
    else:  # as Thunderbird does: RFC 2047 in name= for old clients, RFC 2231 in filename*= for the rest
        type_name, disposition = f'name="{_encoded_words(name)}"', _rfc2231("filename", name)
    head = (
        f"Content-Type: {media_type};\r\n {type_name}\r\n"
        f"Content-Disposition: attachment;\r\n {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")  # lines of 76


def _rfc2231(parameter: str, value: str) -> str:
    """``parameter*=utf-8''…``, cut into numbered continuations so that no header line grows past 80."""
    segments, segment = [], ""
    for atom in (quote(char, safe="") for char in value):  # whole characters: each segment must decode alone
        if len(segment) + len(atom) > 60:
            segments.append(segment)
            segment = ""
        segment += atom
    segments.append(segment)
    if len(segments) == 1:
        return f"{parameter}*=utf-8''{segment}"
    segments[0] = "utf-8''" + segments[0]
    return ";\r\n ".join(f"{parameter}*{index}*={text}" for index, text in enumerate(segments))
