"""Reports as real servers write them (Postfix, Gmail, Exchange, Exim, qmail, Yahoo's feedback loop), with the
return path and Message-ID of the message they are about filled in by the test."""

from __future__ import annotations

from textwrap import dedent


def _crlf(template: str, **values: str) -> bytes:
    """Dedented before the values go in: a value may span lines."""
    return dedent(template).lstrip("\n").format(**values).replace("\n", "\r\n").encode("utf-8")


def postfix_dsn(
    recipient: str = "ada@example.com",
    *,
    to: str = "bounce+12-aaaaaaaaaaaaaaaa@bounces.shop.test",
    return_path: str = "",
    message_id: str = "<12.1700000000@envoi.localhost>",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = (
        "smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected:\n    User unknown in virtual mailbox table"
    ),
) -> bytes:
    """A Postfix bounce: multipart/report with the original's headers (text/rfc822-headers)."""
    return _crlf(
        """
        Return-Path: <>
        Received: by mx.example.net (Postfix) id 4F1B2C3D; Fri,  4 Dec 2026 10:00:03 +0000 (UTC)
        Date: Fri,  4 Dec 2026 10:00:03 +0000 (UTC)
        From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
        Subject: Undelivered Mail Returned to Sender
        To: {to}
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="4F1B2C3D.1764842403/mx.example.net"
        Message-Id: <20261204100003.4F1B2C3D@mx.example.net>

        This is a MIME-encapsulated message.

        --4F1B2C3D.1764842403/mx.example.net
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host mx.example.net.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        <{recipient}>: host mail.example.com[192.0.2.25] said: 550 5.1.1
            <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
            table (in reply to RCPT TO command)

        --4F1B2C3D.1764842403/mx.example.net
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net
        X-Postfix-Queue-ID: 4F1B2C3D
        X-Postfix-Sender: rfc822; {sender}
        Arrival-Date: Fri,  4 Dec 2026 10:00:01 +0000 (UTC)

        Final-Recipient: rfc822; {recipient}
        Original-Recipient: rfc822;{recipient}
        Action: {action}
        Status: {status}
        Remote-MTA: dns; mail.example.com
        Diagnostic-Code: {diagnostic}

        --4F1B2C3D.1764842403/mx.example.net
        Content-Description: Undelivered Message Headers
        Content-Type: text/rfc822-headers

        Return-Path: <{sender}>
        Received: from envoi.shop.test (envoi.shop.test [198.51.100.7])
        \tby mx.example.net (Postfix) with ESMTP id 4F1B2C3D
        \tfor <{recipient}>; Fri,  4 Dec 2026 10:00:01 +0000 (UTC)
        From: Shop <shop@example.com>
        To: {recipient}
        Subject: Order A-1 confirmed
        Message-ID: {message_id}
        MIME-Version: 1.0

        --4F1B2C3D.1764842403/mx.example.net--
        """,
        to=to,
        sender=return_path or to,
        recipient=recipient,
        message_id=message_id,
        action=action,
        status=status,
        diagnostic=diagnostic,
    )


def gmail_dsn(recipient: str = "nobody.here@gmail.com", *, message_id: str = "<7.1700000000@envoi.localhost>") -> bytes:
    """Gmail's "Address not found": an HTML and a text explanation, then the report and the headers."""
    return _crlf(
        """
        From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
        To: shop@example.com
        Auto-Submitted: auto-replied
        Subject: Delivery Status Notification (Failure)
        Content-Type: multipart/report; boundary="000000000000b0d4e5061a2b3c4d"; report-type=delivery-status

        --000000000000b0d4e5061a2b3c4d
        Content-Type: multipart/related; boundary="000000000000b0e4f5061a2b3c4e"

        --000000000000b0e4f5061a2b3c4e
        Content-Type: multipart/alternative; boundary="000000000000b0e4f6061a2b3c4f"

        --000000000000b0e4f6061a2b3c4f
        Content-Type: text/plain; charset="UTF-8"

        ** Address not found **

        Your message wasn't delivered to {recipient} because the address couldn't be found, or is unable to
        receive mail.

        --000000000000b0e4f6061a2b3c4f
        Content-Type: text/html; charset="UTF-8"

        <html><body><h2>Address not found</h2></body></html>

        --000000000000b0e4f6061a2b3c4f--
        --000000000000b0e4f5061a2b3c4e--
        --000000000000b0d4e5061a2b3c4d
        Content-Type: message/delivery-status

        Reporting-MTA: dns; googlemail.com
        Received-From-MTA: dns; envoi.shop.test
        Arrival-Date: Fri, 04 Dec 2026 02:00:01 -0800 (PST)
        X-Original-Message-ID: {message_id}

        Final-Recipient: rfc822; {recipient}
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; gmail-smtp-in.l.google.com. (2607:f8b0:4864:20::52, the server for the domain gmail.com.)
        Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try
         550-5.1.1 double-checking the recipient's email address for typos or
         550-5.1.1 unnecessary spaces. For more information, go to
         550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si2.3 - gsmtp
        Last-Attempt-Date: Fri, 04 Dec 2026 02:00:02 -0800 (PST)

        --000000000000b0d4e5061a2b3c4d
        Content-Type: text/rfc822-headers

        From: Shop <shop@example.com>
        To: {recipient}
        Subject: Order A-1 confirmed
        Message-ID: {message_id}

        --000000000000b0d4e5061a2b3c4d--
        """,
        recipient=recipient,
        message_id=message_id,
    )


def yahoo_arf(
    recipient: str = "ada@example.com",
    *,
    to: str = "fbl@bounces.shop.test",
    return_path: str = "bounce+12-aaaaaaaaaaaaaaaa@bounces.shop.test",
    message_id: str = "<12.1700000000@envoi.localhost>",
    feedback_type: str = "abuse",
) -> bytes:
    """A feedback-loop complaint (ARF): the person pressed "this is spam"; the original comes back whole."""
    return _crlf(
        """
        From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
        To: {to}
        Subject: FW: Order A-1 confirmed
        Date: Fri, 4 Dec 2026 12:00:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="----=_Part_1_2.3"

        ------=_Part_1_2.3
        Content-Type: text/plain; charset=us-ascii

        This is an email abuse report for an email message received from IP 198.51.100.7 on Fri, 4 Dec 2026.

        ------=_Part_1_2.3
        Content-Type: message/feedback-report

        Feedback-Type: {feedback_type}
        User-Agent: Yahoo!-Mail-Feedback/2.0
        Version: 1
        Original-Mail-From: <{return_path}>
        Original-Rcpt-To: <{recipient}>
        Received-Date: Fri, 4 Dec 2026 10:00:01 +0000
        Source-IP: 198.51.100.7
        Reported-Domain: example.com

        ------=_Part_1_2.3
        Content-Type: message/rfc822
        Content-Disposition: inline

        Return-Path: <{return_path}>
        Received: from envoi.shop.test (EHLO envoi.shop.test) (198.51.100.7)
          by mta1.mail.example.com with SMTP; Fri, 04 Dec 2026 10:00:01 +0000
        From: Shop <shop@example.com>
        To: redacted@example.com
        Subject: Order A-1 confirmed
        Message-ID: {message_id}
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Hello Ada

        ------=_Part_1_2.3--
        """,
        to=to,
        return_path=return_path,
        recipient=recipient,
        message_id=message_id,
        feedback_type=feedback_type,
    )


def postfix_plain(recipient: str = "ada@example.com", *, message_id: str = "<12.1700000000@envoi.localhost>") -> bytes:
    """An old Postfix (notify_classes without DSN): the reason and the original's headers, all in the text."""
    return _crlf(
        """
        From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
        To: shop@example.com
        Subject: Undelivered Mail Returned to Sender
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host mail.example.org.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients.

                           The mail system

        <{recipient}>: host mx.example.com[203.0.113.9] said: 550 5.1.1
            <{recipient}>: Recipient address rejected: User unknown in local recipient
            table (in reply to RCPT TO command)

        ------ This is a copy of the message, including all the headers. ------

        Return-Path: <shop@example.com>
        From: Shop <shop@example.com>
        Subject: Order A-1 confirmed
        Message-ID: {message_id}

        Hello Ada
        """,
        recipient=recipient,
        message_id=message_id,
    )


def qmail_plain(recipient: str = "ada@example.com") -> bytes:
    return _crlf(
        """
        From: MAILER-DAEMON@mx.example.org
        To: shop@example.com
        Subject: failure notice

        Hi. This is the qmail-send program at mx.example.org.
        I'm afraid I wasn't able to deliver your message to the following addresses.
        This is a permanent error; I've given up. Sorry it didn't work out.

        <{recipient}>:
        203.0.113.9 does not like recipient.
        Remote host said: 550 5.1.1 <{recipient}>... User unknown
        Giving up on 203.0.113.9.

        --- Below this line is a copy of the message.
        """,
        recipient=recipient,
    )


def exim_quota(recipient: str = "ada@example.com") -> bytes:
    return _crlf(
        """
        From: Mail Delivery System <Mailer-Daemon@mx.example.org>
        To: shop@example.com
        Subject: Mail delivery failed: returning message to sender
        Auto-Submitted: auto-replied

        This message was created automatically by mail delivery software.

        A message that you sent could not be delivered to one or more of its
        recipients. This is a permanent error. The following address(es) failed:

          {recipient}
            mailbox is full: retry timeout exceeded

        ------ This is a copy of the message, including all the headers. ------
        """,
        recipient=recipient,
    )


def exim_unknown(recipient: str = "ada@example.com") -> bytes:
    return _crlf(
        """
        From: Mail Delivery System <Mailer-Daemon@mx.example.org>
        To: shop@example.com
        Subject: Mail delivery failed: returning message to sender

        This message was created automatically by mail delivery software.

        A message that you sent could not be delivered to one or more of its
        recipients. This is a permanent error. The following address(es) failed:

          {recipient}
            host mx.example.com [203.0.113.9]
            SMTP error from remote mail server after RCPT TO:<{recipient}>:
            550 No such user here
        """,
        recipient=recipient,
    )


def out_of_office() -> bytes:
    return _crlf("""
        From: Ada Lovelace <ada@example.com>
        To: shop@example.com
        Subject: Automatic reply: Order A-1 confirmed
        Auto-Submitted: auto-replied
        X-Auto-Response-Suppress: All

        I am out of the office until Monday, with no access to my email.
        """)
