"""Turn a rendered email into RFC 5322 bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime

from envoi.channels.base import EmailMessage


def build_mime(message: EmailMessage) -> MimeMessage:
    """multipart/alternative when both parts exist, text first, so that clients prefer the HTML."""
    mime = MimeMessage()
    mime["From"] = message.sender
    mime["To"] = message.to
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = message.subject
    if message.message_id:
        mime["Message-ID"] = message.message_id
    mime["Date"] = format_datetime(datetime.now(UTC))
    for name, value in message.headers.items():
        mime[name] = value
    if message.text is not None:
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
    else:
        mime.set_content(message.html or "", subtype="html")
    return mime
