"""Telling a person's open or click from a machine's: security scanners and link previewers fetch every link
and image of an email as it arrives, and would otherwise make every email look opened and clicked."""

from __future__ import annotations

import re

# Substrings of user agents that are never a person reading. GoogleImageProxy (Gmail) and YahooMailProxy fetch
# images when their user opens the email, so they are left out: they count as that person. Apple Mail Privacy
# Protection prefetches on delivery with an ordinary browser agent: the time window after sending catches it.
# "Microsoft Office" and "Outlook" are left out too: they are the agents of the real Outlook desktop client.
_SCANNERS = re.compile(
    "|".join(
        (
            r"(?<!cu)bot\b",  # Googlebot, bingbot, Slackbot, Twitterbot... (Cubot is a phone maker)
            r"crawler",
            r"spider",
            r"scanner",
            r"barracuda",
            r"mimecast",
            r"proofpoint",
            r"ironport",
            r"symantec",
            r"messagelabs",
            r"forcepoint",
            r"trend ?micro",
            r"sophos",
            r"fortinet|fortimail|fortiguard",
            r"fireeye",
            r"checkpoint",
            r"zscaler",
            r"urldefense",
            r"safelinks?",
            r"microsoft-urlanalyzer",
            r"office 365",
            r"microsoft office (?:existence|protocol) discovery",  # Office probing a link, before the browser opens it
            r"bingpreview",
            r"linkpreview",
            r"facebookexternalhit",
            r"whatsapp",
            r"skypeuripreview",
            r"headlesschrome",
            r"phantomjs",
            r"python-requests|python-urllib|python-httpx|aiohttp",
            r"\bcurl/",
            r"\bwget/",
            r"go-http-client",
            r"okhttp",
            r"java/",
            r"apache-httpclient",
            r"libwww-perl",
            r"node-fetch|axios/",
        )
    ),
    re.IGNORECASE,
)


def bot_reason(user_agent: str | None, seconds_after_send: float | None, window: float) -> str | None:
    """Why a hit is taken for a machine's, or None for a person's."""
    if seconds_after_send is not None and window > 0 and seconds_after_send < window:
        return f"within {window:g}s of sending: a scanner"
    if not user_agent or not user_agent.strip():
        return "no user agent: a script"  # every mail client and browser sends one
    match = _SCANNERS.search(user_agent)
    if match is not None:
        return f"user agent of a scanner or previewer ({match.group(0)})"
    return None
