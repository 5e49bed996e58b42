"""Opens and clicks as a reader makes them, through the public endpoints, on both databases."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import lxml.html
from sqlalchemy import select

from envoi.runtime import Runtime
from envoi.tracking.api import PIXEL
from envoi.tracking.links import make_token, track_html
from envoi.tracking.models import TrackingHit
from tests.tracking.conftest import BASE, BROWSER, SendEmail, hits_of, message_of

SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"


def path_of(url: str) -> str:
    """What the test client requests for an absolute link of the email (the path and the query, as written)."""
    assert url.startswith(BASE + "/")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def test_a_persons_open_sets_opened_at_once_and_counts_once(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email()
    for _ in range(2):
        response = await web.get(f"/t/o/{sent.token}.gif", headers={"User-Agent": BROWSER})
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.headers["cache-control"] == "no-store"
        assert response.content == PIXEL
    hits = await hits_of(runtime, sent)
    assert [(hit.kind, hit.bot, hit.user_agent) for hit in hits] == [("open", None, BROWSER)] * 2
    message = await message_of(runtime, sent)
    assert message.opened_at == hits[0].at  # the first open, not the last
    assert message.clicked_at is None


async def test_a_scanners_open_is_kept_as_a_bot_and_opens_nothing(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email()
    await web.get(f"/t/o/{sent.token}.gif", headers={"User-Agent": SCANNER})
    (hit,) = await hits_of(runtime, sent)
    assert hit.bot is not None and "Barracuda" in hit.bot
    assert (await message_of(runtime, sent)).opened_at is None


async def test_an_open_a_second_after_sending_is_a_scanners(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email(seconds_ago=1.0)
    await web.get(f"/t/o/{sent.token}.gif", headers={"User-Agent": BROWSER})
    (hit,) = await hits_of(runtime, sent)
    assert hit.bot == "within 10s of sending: a scanner"
    assert (await message_of(runtime, sent)).opened_at is None


async def test_a_forged_or_unknown_token_still_gets_the_pixel_and_records_nothing(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent, other = await send_email(), await send_email(address="grace@example.com")
    forged = make_token(other.event_id, secret).split(".")[0] + "." + sent.token.split(".")[1]
    unknown = make_token(other.event_id + 1000, secret)
    for token in (forged, unknown, "nonsense"):
        response = await web.get(f"/t/o/{token}.gif", headers={"User-Agent": BROWSER})
        assert (response.status_code, response.content) == (200, PIXEL)
    async with runtime.transaction() as session:
        assert (await session.scalars(select(TrackingHit))).all() == []


async def test_a_click_lands_on_the_exact_link_of_the_email_and_counts_as_an_open(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent = await send_email()
    html = (
        '<html><body><a href="https://shop.example/caf\u00e9?q=\u00e9t\u00e9&amp;size=M&amp;tag=a+b%2Fc#top">Shop</a>'
        '<a href="mailto:help@example.com">Help</a></body></html>'
    )
    tracked = track_html(html, base_url=BASE, token=sent.token, secret=secret)
    link, mail = (a.get("href") for a in lxml.html.fromstring(tracked).iter("a"))
    assert mail == "mailto:help@example.com"
    response = await web.get(path_of(link), headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    # The browser's own encoding of the same URL: non-ASCII as UTF-8 percent escapes, the rest as written.
    assert response.headers["location"] == "https://shop.example/caf%C3%A9?q=%C3%A9t%C3%A9&size=M&tag=a+b%2Fc#top"
    (hit,) = await hits_of(runtime, sent)
    assert (hit.kind, hit.bot, hit.url) == (
        "click",
        None,
        "https://shop.example/caf\u00e9?q=\u00e9t\u00e9&size=M&tag=a+b%2Fc#top",
    )
    message = await message_of(runtime, sent)
    assert message.clicked_at == hit.at and message.opened_at == hit.at  # images were off: no pixel came first


async def test_a_click_after_an_open_keeps_the_first_open(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent = await send_email()
    await web.get(f"/t/o/{sent.token}.gif", headers={"User-Agent": BROWSER})
    tracked = track_html('<a href="https://a.example/">a</a>', base_url=BASE, token=sent.token, secret=secret)
    (link,) = (a.get("href") for a in lxml.html.fromstring(tracked).iter("a"))
    assert (await web.get(path_of(link), headers={"User-Agent": BROWSER})).status_code == 302
    opened, clicked = await hits_of(runtime, sent)
    message = await message_of(runtime, sent)
    assert message.opened_at == opened.at and message.clicked_at == clicked.at and opened.at < clicked.at


async def test_a_scanners_click_is_redirected_but_not_counted(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent = await send_email()
    tracked = track_html('<a href="https://a.example/">a</a>', base_url=BASE, token=sent.token, secret=secret)
    (link,) = (a.get("href") for a in lxml.html.fromstring(tracked).iter("a"))
    response = await web.get(path_of(link), headers={"User-Agent": "python-requests/2.32"})
    assert (response.status_code, response.headers["location"]) == (302, "https://a.example/")
    (hit,) = await hits_of(runtime, sent)
    assert hit.bot is not None and "python-requests" in hit.bot
    message = await message_of(runtime, sent)
    assert (message.clicked_at, message.opened_at) == (None, None)


async def test_a_changed_target_or_signature_is_a_broken_link_never_a_redirect(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent = await send_email()
    tracked = track_html('<a href="https://shop.example/">a</a>', base_url=BASE, token=sent.token, secret=secret)
    (link,) = (a.get("href") for a in lxml.html.fromstring(tracked).iter("a"))
    path = path_of(link)
    signature = path.rsplit("&s=", 1)[1]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for changed in (
        path.replace("shop.example", "evil.example"),
        path.replace(signature, flipped),
        path.split("&s=")[0],
        f"/t/c/{sent.token}?u=javascript%3Aalert(1)&s={signature}",
    ):
        response = await web.get(changed, headers={"User-Agent": BROWSER})
        assert response.status_code == 400, changed
        assert "location" not in response.headers
        assert "broken" in response.text
    assert await hits_of(runtime, sent) == []


async def test_a_token_with_another_events_mac_is_not_found(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent, other = await send_email(), await send_email(address="grace@example.com")
    tracked = track_html('<a href="https://shop.example/">a</a>', base_url=BASE, token=sent.token, secret=secret)
    (link,) = (a.get("href") for a in lxml.html.fromstring(tracked).iter("a"))
    forged = make_token(other.event_id, secret).split(".")[0] + "." + sent.token.split(".")[1]
    response = await web.get(path_of(link).replace(sent.token, forged))
    assert response.status_code == 404
    assert "location" not in response.headers
    assert await hits_of(runtime, sent) == [] and await hits_of(runtime, other) == []
