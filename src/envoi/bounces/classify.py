"""What a remote server's refusal means for the address: hard (it will never work), soft (it may work later), or
nothing we can tell. Pure functions over an enhanced status code (RFC 3463) and the server's own words.

The enhanced code decides when there is one; the words decide between a 5.x.x about the address and one about
the message or its sender (a spam filter, a policy), which must not cost the address its quarantine at once.
"""

from __future__ import annotations

import re

from envoi.bounces.models import BounceKind

# ``5.1.1`` but not the ``0.2.1`` of an IP address or a version number.
ENHANCED_CODE = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)")
# ``550 `` or ``550-`` as a server's reply starts, not a part of a longer number.
BASIC_CODE = re.compile(r"(?<![\w.])([45][0-5]\d)[ -](?=[\w<(\[])")

_REPLY_PREFIX = re.compile(r"\s*[45]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")
_CONTINUATION = re.compile(r"\s+[45]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")

# The address does not exist, or its domain does not take mail: sending again is pointless.
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)|(mailbox|recipient|user|address) "
    r"(not found|unknown|does not exist|doesn't exist|unavailable|invalid|disabled)|does not exist|"
    r"invalid (recipient|mailbox|address)|unknown (recipient|mailbox|address|local part)|no mailbox|"
    r"not our customer|account (has been )?(disabled|deactivated|closed|suspended)|unrouteable address|"
    r"host or domain name not found|domain (not found|does not exist)|no mx|"
    r"(does not|doesn't) have an? (\S+ )?account",
    re.IGNORECASE,
)
# Full, over quota, or a temporary condition: it may work later.
_SOFT_WORDS = re.compile(
    r"mailbox (is )?full|quota|insufficient (system )?storage|exceeded storage|storage (space|allocation)|"
    r"try again later|temporar|deferred|greylist|too many (connections|messages)|rate limit",
    re.IGNORECASE,
)

# Enhanced codes about the address itself (RFC 3463): bad mailbox, bad domain, disabled mailbox, unroutable.
_HARD_STATUSES = ("5.1.", "5.2.1", "5.4.4")
_SOFT_STATUSES = ("5.2.2",)  # mailbox full, though permanent by its class


def enhanced_code(text: str) -> str | None:
    """The first enhanced status code in a text, like ``5.1.1``."""
    found = ENHANCED_CODE.search(text)
    return ".".join(found.groups()) if found else None


def basic_code(text: str) -> int | None:
    found = BASIC_CODE.search(text)
    return int(found.group(1)) if found else None


def classify(status: str | None, words: str) -> BounceKind | None:
    """The kind of a failure from its enhanced code (may be None) and its text; None when neither says."""
    soft_words, hard_words = _SOFT_WORDS.search(words), _HARD_WORDS.search(words)
    if status is not None:
        if status.startswith("2"):
            return BounceKind.IGNORED
        if status.startswith("4") or status.startswith(_SOFT_STATUSES):
            return BounceKind.SOFT
        if status.startswith(_HARD_STATUSES):
            return BounceKind.SOFT if soft_words else BounceKind.HARD
        # 5.0.0 and the message, network, protocol and policy classes: the words tell whether it is the address.
        return BounceKind.HARD if hard_words and not soft_words else BounceKind.SOFT
    if soft_words:
        return BounceKind.SOFT
    if hard_words:
        return BounceKind.HARD
    code = basic_code(words)
    if code is None:
        return None
    # 552 (storage exceeded) and 554 (anything from a spam filter to an unknown user) are not sure enough.
    return BounceKind.HARD if code in (550, 551, 553) else BounceKind.SOFT


def unfold(reply: str) -> str:
    """A multi-line SMTP reply as one: ``550-5.1.1 a 550-5.1.1 b 550 5.1.1 c`` -> ``550-5.1.1 a b c``."""
    first = _REPLY_PREFIX.match(reply)
    if first is None:
        return reply
    return reply[: first.end()] + _CONTINUATION.sub(" ", reply[first.end() :])


def clause(text: str, limit: int = 500) -> str:
    """A server's words on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def evidence(text: str) -> str | None:
    """The line of a plain-text bounce that says why: the first with a reply code or a telling phrase, with the
    lines indented under it (Postfix and Exim fold a long reply that way)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not _telling(line):
            continue
        indent = len(line) - len(line.lstrip())
        taken = [line]
        for following in lines[index + 1 : index + 4]:
            if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                break
            taken.append(following)
        return clause(" ".join(taken))
    return None


def _telling(line: str) -> bool:
    return any(pattern.search(line) for pattern in (ENHANCED_CODE, BASIC_CODE, _HARD_WORDS, _SOFT_WORDS))
