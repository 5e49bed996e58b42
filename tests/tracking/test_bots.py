"""Which hits are a machine's: a scanner's user agent, or anything right after sending."""

from __future__ import annotations

import pytest

from envoi.tracking.bots import bot_reason

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36"
CUBOT = "Mozilla/5.0 (Linux; Android 12; CUBOT X50) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Mobile Safari"


@pytest.mark.parametrize(
    "agent",
    [
        CHROME,
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
        CUBOT,
    ],
)
def test_people_and_the_proxies_that_fetch_for_them_are_people(agent: str) -> None:
    assert bot_reason(agent, 3600.0, 10.0) is None


@pytest.mark.parametrize(
    ("agent", "named"),
    [
        ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "Barracuda"),
        ("Mimecast-URL-Protect/1.0", "Mimecast"),
        ("python-requests/2.32.3", "python-requests"),
        ("curl/8.5.0", "curl/"),
        ("Go-http-client/1.1", "Go-http-client"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0", "Headless"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (compatible; LinkPreview/1.0)", "LinkPreview"),
    ],
)
def test_scanners_and_scripts_are_bots_with_what_gave_them_away(agent: str, named: str) -> None:
    reason = bot_reason(agent, 3600.0, 10.0)
    assert reason is not None and named.lower() in reason.lower()


def test_a_hit_within_the_window_after_sending_is_a_scanner_whatever_its_agent() -> None:
    assert bot_reason(CHROME, 1.0, 10.0) == "within 10s of sending: a scanner"
    assert bot_reason(CHROME, -2.0, 10.0) is not None  # before sent_at was recorded: the send was just happening
    assert bot_reason(CHROME, 10.0, 10.0) is None
    assert bot_reason(CHROME, 1.0, 0.0) is None  # a window of 0 turns the check off
    assert bot_reason(CHROME, -2.0, 0.0) is None
    assert bot_reason(CHROME, None, 10.0) is None  # no send time: only the agent can tell


def test_a_hit_without_a_user_agent_is_a_script() -> None:
    assert bot_reason(None, 3600.0, 10.0) is not None
    assert bot_reason("  ", 3600.0, 10.0) is not None
