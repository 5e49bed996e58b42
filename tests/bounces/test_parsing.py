"""Reports as Postfix, Gmail, Exim, qmail and Yahoo's feedback loop write them, read into findings; return paths
signed and read back. Pure functions: no database."""

from __future__ import annotations

import pytest

from envoi.bounces.classify import classify, unfold
from envoi.bounces.listener import accepts
from envoi.bounces.models import BounceKind
from envoi.bounces.parsing import parse_report
from envoi.bounces.verp import is_return_path, make_return_path, read_message_id, read_return_path
from tests.bounces import samples

HARD, SOFT, IGNORED, COMPLAINT = BounceKind.HARD, BounceKind.SOFT, BounceKind.IGNORED, BounceKind.COMPLAINT
VERP = "bounce+12-aaaaaaaaaaaaaaaa@bounces.shop.test"


def test_a_postfix_dsn_is_a_hard_bounce_with_the_original_return_path_and_message_id() -> None:
    report = parse_report(samples.postfix_dsn(return_path=VERP), mail_from="")
    (finding,) = report.findings
    assert (finding.kind, finding.recipient, finding.status_code) == (HARD, "ada@example.com", "5.1.1")
    assert finding.diagnostic.startswith("550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown")
    assert report.reporter == "mx.example.net"
    assert report.return_paths == (VERP,)
    assert "<12.1700000000@envoi.localhost>" in report.message_ids


def test_gmails_address_not_found_is_hard_and_its_folded_reply_reads_as_one() -> None:
    report = parse_report(samples.gmail_dsn())
    (finding,) = report.findings
    assert (finding.kind, finding.recipient, finding.status_code) == (HARD, "nobody.here@gmail.com", "5.1.1")
    assert finding.diagnostic.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert "550-5.1.1 double" not in finding.diagnostic and "double-checking" in finding.diagnostic
    assert report.reporter == "googlemail.com" and report.message_ids == ("<7.1700000000@envoi.localhost>",)


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "kind"),
    [
        ("failed", "5.2.2", "smtp; 552 5.2.2 Mailbox full", SOFT),
        ("failed", "5.0.0", "smtp; 550 5.2.2 <ada@example.com>: mailbox is over quota", SOFT),
        ("failed", "5.7.1", "smtp; 550 5.7.1 Message rejected as spam by Content Filtering.", SOFT),
        ("failed", "5.0.0", "smtp; 550 5.1.1 <ada@example.com>... User unknown", HARD),  # the server's code wins
        ("failed", "5.0.0", "smtp; 550 Requested action not taken: no such user here", HARD),
        ("failed", "5.1.2", "X-Postfix; Host or domain name not found. Name service error for name=nope.test", HARD),
        ("failed", "4.4.7", "X-Postfix; delivery temporarily suspended: connect to mx.example.com timed out", SOFT),
        ("delayed", "4.4.1", "X-Postfix; connect to mx.example.com[203.0.113.9]:25: Connection timed out", IGNORED),
        ("delivered", "2.0.0", "smtp; 250 2.0.0 OK", IGNORED),
    ],
)
def test_dsn_actions_and_status_codes_decide_the_kind(action: str, status: str, diagnostic: str, kind: int) -> None:
    (finding,) = parse_report(samples.postfix_dsn(action=action, status=status, diagnostic=diagnostic)).findings
    assert finding.kind == kind, finding
    if action == "delayed":
        assert finding.diagnostic.startswith("delayed, still trying: connect to mx.example.com")


def test_an_arf_abuse_report_is_a_complaint_about_the_original_recipient() -> None:
    report = parse_report(samples.yahoo_arf(return_path=VERP))
    (finding,) = report.findings
    assert (finding.kind, finding.recipient) == (COMPLAINT, "ada@example.com")
    assert "Yahoo!-Mail-Feedback/2.0" in finding.diagnostic and report.reporter == "Yahoo!-Mail-Feedback/2.0"
    assert report.return_paths == (VERP,) and report.message_ids == ("<12.1700000000@envoi.localhost>",)


def test_an_arf_not_spam_report_is_ignored() -> None:
    (finding,) = parse_report(samples.yahoo_arf(feedback_type="not-spam")).findings
    assert finding.kind == IGNORED and "not-spam" in finding.diagnostic


@pytest.mark.parametrize(
    ("sample", "kind", "status", "words"),
    [
        (samples.postfix_plain, HARD, "5.1.1", "User unknown in local recipient table"),
        (samples.qmail_plain, HARD, "5.1.1", "Remote host said: 550 5.1.1 <ada@example.com>... User unknown"),
        (samples.exim_unknown, HARD, None, "550 No such user here"),
        (samples.exim_quota, SOFT, None, "mailbox is full: retry timeout exceeded"),
    ],
)
def test_plain_text_bounces_of_common_servers(sample: object, kind: int, status: str | None, words: str) -> None:
    (finding,) = parse_report(sample()).findings  # type: ignore[operator]
    assert (finding.kind, finding.status_code, finding.recipient) == (kind, status, "ada@example.com")
    assert words in finding.diagnostic


def test_a_plain_text_bounce_quotes_the_original_message_id() -> None:
    report = parse_report(samples.postfix_plain(message_id="<42.1764842401@envoi.localhost>"))
    assert report.message_ids == ("<42.1764842401@envoi.localhost>",)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (samples.out_of_office(), "an automatic reply: Automatic reply: Order A-1 confirmed"),
        (b"\x00\xff\xfe\x80 garbage\r\n\r\n\xc3(", "not a bounce report: (no subject)"),
        (b"", "not a bounce report: (no subject)"),
        (
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n",
            "a delivery status",
        ),
        (b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n\r\nSorry.\r\n", "a bounce that says no"),
    ],
)
def test_what_is_not_a_readable_bounce_is_ignored_with_the_reason(raw: bytes, reason: str) -> None:
    (finding,) = parse_report(raw).findings
    assert finding.kind == IGNORED and finding.diagnostic.startswith(reason), finding


def test_classification_without_any_code_uses_the_words() -> None:
    assert classify(None, "The mailbox is full") == SOFT
    assert classify(None, "550 Requested action not taken") == HARD
    assert classify(None, "554 delivery error: dd This user doesn't have an account") == HARD
    assert classify(None, "554 Transaction failed") == SOFT
    assert classify(None, "Your message was read on Monday") is None
    assert classify(None, "connected to 192.0.2.1 at 10.4.3.2") is None  # not an enhanced code in an address
    assert unfold("550-5.1.1 a\n 550-5.1.1 b\n 550 5.1.1 c") == "550-5.1.1 a b c"


def test_a_return_path_names_its_event_and_cannot_be_forged() -> None:
    secret = b"s" * 32
    made = make_return_path(1234, secret, "Bounces.Shop.test")
    assert made.startswith("bounce+1234-") and made.endswith("@bounces.shop.test") and made == made.lower()
    assert is_return_path(made, "bounces.shop.test")
    found = read_return_path(made.upper(), secret, "bounces.shop.test")  # a server that changed the case
    assert found is not None and (found.event_id, found.genuine) == (1234, True)
    forged = read_return_path(made.replace("bounce+1234-", "bounce+1235-"), secret, "bounces.shop.test")
    assert forged is not None and (forged.event_id, forged.genuine) == (1235, False)
    other_secret = read_return_path(made, b"t" * 32, "bounces.shop.test")
    assert other_secret is not None and not other_secret.genuine
    assert read_return_path(made, secret, "elsewhere.test") is None
    assert read_return_path("postmaster@bounces.shop.test", secret, "bounces.shop.test") is None
    assert read_return_path("bounce+99999999999999999999-aaaaaaaaaaaaaaaa@b.test", secret, "b.test") is None
    assert read_message_id("<12.1700000000@envoi.localhost>", "envoi.localhost") == (12, 1700000000)
    assert read_message_id("<12.1700000000@elsewhere.test>", "envoi.localhost") is None


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        (VERP, True),
        (VERP.upper(), True),
        ("postmaster@bounces.shop.test", True),
        ("FBL@bounces.shop.test", True),
        ("abuse@bounces.shop.test", True),
        ("postmaster", True),
        ("info@bounces.shop.test", False),
        ("bounce+12@bounces.shop.test", False),
        ("ada@example.com", False),
        ("postmaster@example.com", False),
        ("bounce+12-aaaaaaaaaaaaaaaa@example.com", False),
    ],
)
def test_the_listener_takes_mail_for_the_bounce_domain_only(address: str, accepted: bool) -> None:
    assert accepts(address, "bounces.shop.test") is accepted
