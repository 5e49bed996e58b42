"""Reading a report received by the bounce listener: a DSN (RFC 3464), a feedback-loop complaint (ARF, RFC 5965)
or a plain-text bounce, into findings, and what it quotes of the message it is about (its return path and
Message-ID), so that it can be tied to the message we sent.

Pure functions over the bytes of an email (the stdlib ``email`` package, ``policy.default``). Reports are
written by every kind of software: whatever cannot be read becomes an ignored finding with the reason, never
an exception.
"""

from __future__ import annotations

import email
import email.message
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from envoi.bounces.classify import classify, clause, enhanced_code, evidence, unfold
from envoi.bounces.models import BounceKind

_TEXT_LIMIT = 64 * 1024  # of a plain-text bounce's body, searched for the reason
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_RETURNED_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers")
_COMPLAINTS = ("abuse", "fraud")  # ARF feedback types that are a person's complaint
_DAEMONS = ("mailer-daemon", "mailer_daemon", "postmaster", "mail-delivery-subsystem", "maildaemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|problem|report)|mail delivery (failed|failure)|"
    r"returned mail|failure notice|could not be delivered|non.?delivery|delivery notification",
    re.IGNORECASE,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|absence|abwesen|réponse automatique)",
    re.IGNORECASE,
)
# Headers of the original message quoted in a report's text (plain-text bounces paste them inline).
_QUOTED_RETURN_PATH = re.compile(r"^[ \t>]*Return-Path:[ \t]*<?([^<>\s]+@[^<>\s]+)>?", re.IGNORECASE | re.MULTILINE)
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ANGLED_ADDRESS = re.compile(r"<([^<>\s@]+@[^<>\s@]+\.[^<>\s@]+)>")
_INDENTED_ADDRESS = re.compile(r"^[ \t]+([^<>\s@]+@[^<>\s@]+\.[^<>\s@:]+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Finding:
    """What a report says about one recipient."""

    kind: BounceKind
    recipient: str | None  # as the report names it (a forwarded address may differ from the one we sent to)
    status_code: str | None  # enhanced, like 5.1.1
    diagnostic: str  # the remote server's words, or why it is ignored


@dataclass(frozen=True, slots=True)
class Report:
    findings: tuple[Finding, ...]
    reporter: str | None = None  # the server or service that wrote it
    return_paths: tuple[str, ...] = field(default=())  # return paths quoted from the original message
    message_ids: tuple[str, ...] = field(default=())  # its Message-IDs

    def finding_for(self, address: str) -> Finding:
        """The finding about ``address`` when the report names it, else the one that matters most."""
        for finding in self.findings:
            if finding.recipient and finding.recipient.lower() == address.lower():
                return finding
        return self.main_finding

    @property
    def main_finding(self) -> Finding:
        order = (BounceKind.COMPLAINT, BounceKind.HARD, BounceKind.SOFT, BounceKind.IGNORED)
        return min(self.findings, key=lambda f: order.index(f.kind))


def ignored(reason: str, reporter: str | None = None) -> Report:
    return Report((Finding(BounceKind.IGNORED, None, None, reason),), reporter)


def parse_report(raw: bytes, mail_from: str | None = None) -> Report:
    """The findings of a report; ``mail_from`` is the envelope sender it came with ("" for a bounce's <>)."""
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        return _read(message, raw, mail_from)
    except Exception as error:  # a report is anyone's bytes: a parser bug must not lose or crash the listener
        return ignored(f"unreadable report: {type(error).__name__}: {clause(str(error), 200)}")


def _read(message: email.message.EmailMessage, raw: bytes, mail_from: str | None) -> Report:
    text = raw[:_TEXT_LIMIT].decode("utf-8", "replace")
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type", "")).lower()
        parts = list(message.iter_parts())
        references = _references(parts, text)
        sender = _address(message, "From")
        if report_type == "feedback-report" or any(p.get_content_type() == "message/feedback-report" for p in parts):
            return _complaint(parts, sender, references)
        dsn = next((p for p in parts if p.get_content_type() in _DSN_TYPES), None)
        if dsn is not None:
            return _dsn(dsn, sender, references)
        if report_type == "delivery-status":
            return ignored("a delivery status report without its message/delivery-status part", sender)
    return _plain(message, text, mail_from)


def _dsn(part: email.message.Message, sender: str | None, references: dict[str, tuple[str, ...]]) -> Report:
    blocks = _field_blocks(part)
    reporter = _typed_value(blocks[0].get("reporting-mta")) if blocks else None
    findings = []
    for block in blocks:
        if not {"final-recipient", "original-recipient", "action"} & block.keys():
            continue  # the per-message block
        recipient = _typed_value(block.get("final-recipient") or block.get("original-recipient"))
        action = (block.get("action") or "failed").strip().lower()
        diagnostic = clause(unfold(_typed_value(block.get("diagnostic-code")) or ""))
        status = enhanced_code(block.get("status") or "")
        if status is None or status.endswith(".0.0"):  # the server's own code is often more precise
            status = enhanced_code(diagnostic) or status
        words = diagnostic or f"{action} {status or ''}".strip()
        if action in ("delivered", "relayed", "expanded"):
            kind, words = BounceKind.IGNORED, f"{action}: {words}"
        elif action == "delayed":
            kind, words = BounceKind.IGNORED, f"delayed, still trying: {words}"
        else:
            kind = classify(status, diagnostic) or BounceKind.SOFT  # failed, yet nothing says why: not sure enough
        findings.append(Finding(kind, _bare(recipient), status, words))
    if not findings:
        return ignored("a delivery status report with no recipient in it", reporter or sender)
    return Report(tuple(findings), reporter or sender, references["return_paths"], references["message_ids"])


def _complaint(
    parts: Sequence[email.message.Message], sender: str | None, references: dict[str, tuple[str, ...]]
) -> Report:
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    fields = next(iter(_field_blocks(report)), {})
    feedback = (fields.get("feedback-type") or "").strip().lower()
    agent = (fields.get("user-agent") or "").strip()
    reporter = _typed_value(fields.get("reporting-mta")) or agent or sender
    recipient = _bare(fields.get("original-rcpt-to")) or _returned_recipient(parts)
    if feedback in _COMPLAINTS:
        kind, diagnostic = BounceKind.COMPLAINT, f"complaint ({feedback}) through the feedback loop of {reporter}"
    else:
        kind, diagnostic = BounceKind.IGNORED, f"feedback report of type {feedback or 'unknown'}, not a complaint"
    finding = Finding(kind, recipient, None, clause(diagnostic))
    return Report((finding,), reporter, references["return_paths"], references["message_ids"])


def _plain(message: email.message.EmailMessage, text: str, mail_from: str | None) -> Report:
    sender = _address(message, "From")
    subject = clause(str(message.get("Subject") or ""), 200) or "(no subject)"
    references = _quoted_references(text)
    if (sender or "").split("@")[0].lower() in _DAEMONS or _BOUNCE_SUBJECT.search(subject):
        body = _body_text(message)
        status = enhanced_code(body)
        kind, why = classify(status, body), evidence(body)
        if kind is None or why is None:
            finding = Finding(BounceKind.IGNORED, None, None, f"a bounce that says no reason: {subject}")
        else:
            finding = Finding(kind, _plain_recipient(body), status, why)
        return Report((finding,), sender, *references)
    if _auto_reply(message, subject):
        reason = f"an automatic reply: {subject}"
    elif mail_from == "":
        reason = f"a message from the null sender that is no bounce: {subject}"
    else:
        reason = f"not a bounce report: {subject}"
    return Report((Finding(BounceKind.IGNORED, None, None, reason),), sender, *references)


def _auto_reply(message: email.message.EmailMessage, subject: str) -> bool:
    submitted = str(message.get("Auto-Submitted") or "no").strip().lower()
    precedence = str(message.get("Precedence") or "").strip().lower()
    flagged = any(message.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"))
    return submitted != "no" or precedence == "auto_reply" or flagged or bool(_AUTO_REPLY_SUBJECT.search(subject))


def _body_text(message: email.message.EmailMessage) -> str:
    """The text parts of a message, attachments and quoted messages left out."""
    texts = []
    for part in message.walk():
        if part.get_content_type() != "text/plain" or part.get_content_disposition() == "attachment":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                texts.append(payload.decode(charset, "replace"))
            except LookupError:  # a charset Python does not know
                texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts)[:_TEXT_LIMIT].replace("\r\n", "\n")


def _plain_recipient(body: str) -> str | None:
    found = _ANGLED_ADDRESS.search(body) or _INDENTED_ADDRESS.search(body)
    return found.group(1) if found else None


def _field_blocks(part: email.message.Message | None) -> list[dict[str, str]]:
    """The header-like blocks of a message/delivery-status or message/feedback-report part, names lower-cased."""
    if part is None:
        return []
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {name.lower(): str(value) for name, value in block.items()}
            for block in payload
            if isinstance(block, email.message.Message)
        ]
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    parser = HeaderParser(policy=policy.compat32)
    return [{name.lower(): str(value) for name, value in parser.parsestr(block).items()} for block in blocks]


def _references(parts: Sequence[email.message.Message], text: str) -> dict[str, tuple[str, ...]]:
    """The return paths and Message-IDs of the message a report returns (as a part, or quoted in its text)."""
    return_paths: list[str] = []
    message_ids: list[str] = []
    for headers in _returned_headers(parts):
        return_paths += [str(v) for v in headers.get_all("Return-Path") or []]
        message_ids += [str(v) for v in headers.get_all("Message-ID") or []]
    quoted_paths, quoted_ids = _quoted_references(text)
    return {
        "return_paths": _unique(_bare(v) for v in [*return_paths, *quoted_paths]),
        "message_ids": _unique(v.strip() for v in [*message_ids, *quoted_ids]),
    }


def _quoted_references(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _unique(_QUOTED_RETURN_PATH.findall(text)), _unique(_QUOTED_MESSAGE_ID.findall(text))


def _returned_headers(parts: Sequence[email.message.Message]) -> list[email.message.Message]:
    found = []
    for part in parts:
        kind = part.get_content_type()
        if kind not in _RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            found += [p for p in payload if isinstance(p, email.message.Message)]
        else:
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
            found.append(HeaderParser(policy=policy.compat32).parsestr(text))
    return found


def _returned_recipient(parts: Sequence[email.message.Message]) -> str | None:
    """The one To address of the returned message (feedback loops often redact it)."""
    for headers in _returned_headers(parts):
        addresses = [a for _, a in getaddresses([str(v) for v in headers.get_all("To") or []]) if "@" in a]
        if len(addresses) == 1:
            return addresses[0]
    return None


def _address(message: email.message.Message, name: str) -> str | None:
    value = message.get(name)
    return (parseaddr(str(value))[1] or None) if value is not None else None


def _typed_value(value: str | None) -> str | None:
    """``rfc822; ada@example.com`` -> ``ada@example.com``; ``dns; mx.example.net`` -> ``mx.example.net``."""
    if not value:
        return None
    kind, separator, rest = value.partition(";")
    return (rest if separator and " " not in kind.strip() else value).strip() or None


def _bare(address: str | None) -> str | None:
    if not address:
        return None
    found = address.strip().strip("<>").strip()
    return found if "@" in found and " " not in found else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
