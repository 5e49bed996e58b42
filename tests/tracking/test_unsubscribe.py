"""Unsubscribing: RFC 8058's one-click POST as Gmail sends it, and the page a person confirms on. A GET, which
every link scanner makes, never unsubscribes."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from envoi.runtime import Runtime
from envoi.tracking.links import make_token, unsubscribe_url
from envoi.tracking.models import TrackingHit
from tests.tracking.conftest import BASE, BROWSER, SendEmail, hits_of, message_of, profile_of

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
GMAIL = "Mozilla/5.0 (compatible; Google-Unsubscribe)"  # any agent: the POST itself is the request to leave


def path_of(token: str) -> str:
    return unsubscribe_url(BASE, token).removeprefix(BASE)


async def test_the_one_click_post_as_gmail_sends_it_unsubscribes(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email(seconds_ago=1.0)  # within the scanner window: a POST is never a scanner's
    response = await web.post(
        path_of(sent.token), content=b"List-Unsubscribe=One-Click", headers={**ONE_CLICK, "User-Agent": GMAIL}
    )
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    profile = await profile_of(runtime, sent)
    assert (profile.subscribed, profile.unsubscribed_how) == (False, "one-click header")
    (hit,) = await hits_of(runtime, sent)
    assert (hit.kind, hit.bot) == ("unsubscribe", None)
    assert profile.unsubscribed_at == hit.at
    assert (await message_of(runtime, sent)).unsubscribed_at == hit.at


async def test_the_rfc_8058_multipart_post_is_one_click_too(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email()
    response = await web.post(path_of(sent.token), files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert (await profile_of(runtime, sent)).unsubscribed_how == "one-click header"


async def test_a_second_post_is_harmless_and_keeps_the_first_unsubscription(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email()
    first = await web.post(path_of(sent.token), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    second = await web.post(path_of(sent.token), data={})
    assert (first.status_code, second.status_code) == (200, 200)
    assert "You are unsubscribed" in second.text
    hits = await hits_of(runtime, sent)
    profile = await profile_of(runtime, sent)
    assert (profile.subscribed, profile.unsubscribed_how, profile.unsubscribed_at) == (
        False,
        "one-click header",
        hits[0].at,
    )
    assert (await message_of(runtime, sent)).unsubscribed_at == hits[0].at


async def test_opening_the_unsubscribe_page_asks_and_does_not_unsubscribe(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email(address="ada.lovelace@example.com")
    response = await web.get(path_of(sent.token), headers={"User-Agent": "Mimecast-URL-Protect/1.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Unsubscribe a***@example.com from these emails?" in response.text
    assert "ada.lovelace" not in response.text
    assert '<form method="post">' in response.text and "<script" not in response.text
    assert (await profile_of(runtime, sent)).subscribed is True
    assert (await message_of(runtime, sent)).unsubscribed_at is None
    assert await hits_of(runtime, sent) == []


async def test_the_pages_button_unsubscribes_by_link(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent = await send_email()
    response = await web.post(path_of(sent.token), headers={"User-Agent": BROWSER})  # the form: no fields
    assert response.status_code == 200
    profile = await profile_of(runtime, sent)
    assert (profile.subscribed, profile.unsubscribed_how) == (False, "link")


async def test_only_the_emails_profile_is_unsubscribed(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail
) -> None:
    sent, other = await send_email(), await send_email(address="grace@example.com")
    await web.post(path_of(sent.token), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert (await profile_of(runtime, other)).subscribed is True
    assert (await message_of(runtime, other)).unsubscribed_at is None


async def test_a_bad_token_is_not_found_and_unsubscribes_no_one(
    runtime: Runtime, web: httpx.AsyncClient, send_email: SendEmail, secret: bytes
) -> None:
    sent, other = await send_email(), await send_email(address="grace@example.com")
    forged = make_token(other.event_id, secret).split(".")[0] + "." + sent.token.split(".")[1]
    gone = make_token(other.event_id + 1000, secret)  # signed, but no such email (purged)
    for token in (forged, gone, "x"):
        assert (await web.get(path_of(token))).status_code == 404
        response = await web.post(path_of(token), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
        assert response.status_code == 404
    assert (await profile_of(runtime, sent)).subscribed and (await profile_of(runtime, other)).subscribed
    async with runtime.transaction() as session:
        assert (await session.scalars(select(TrackingHit))).all() == []
