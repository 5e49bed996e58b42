"""The issue's check, in Chromium against ``envoi serve``: an A/B delivery in manual mode, made in the console by
one operator and edited by another, sends its 20 test emails; when the test ends a variant must be selected, so
nothing more is sent; its creator, console open, is told at once (no reload), follows the notification to the
delivery's page, reads the figures and sends variant B to the remaining 80; an operator who neither made nor
edited it is told nothing. Then its audience's live count, as filters are typed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.models import DeliveryRecipient
from envoi.campaigns.rounds import run_round
from envoi.db.base import utcnow
from envoi.delivery.models import Message
from envoi.events.models import Event
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.console.conftest import Server, form_token, http_log_in, log_in, screenshot

CREATOR = "deliveries@example.com"  # delivery_supervisors
EDITOR = "admin@example.com"
OUTSIDER = "workflows@example.com"  # neither made nor edited it
TITLE = "A variant of 'November news!' must be selected"
T = TypeVar("T")


def _in_database(server: Server, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work`` in one transaction on the server's database, from a thread of its own: Playwright's sync API
    keeps an event loop running in this one."""

    async def run() -> T:
        env = server.env
        runtime = Runtime.create(Settings(database_url=env["ENVOI_DATABASE_URL"], data_dir=Path(env["ENVOI_DATA_DIR"])))
        try:
            async with runtime.transaction() as session:
                return await work(session)
        finally:
            await runtime.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _rest_queued(server: Server, delivery_id: int) -> dict[str | None, int]:
    """The events of the recipients outside the test groups (the rest), by variant."""

    async def count(session: AsyncSession) -> dict[str | None, int]:
        rows = await session.execute(
            select(Event.variant, func.count())
            .join(DeliveryRecipient, (DeliveryRecipient.profile_id == Event.profile_id)
                  & (DeliveryRecipient.delivery_id == Event.delivery_id))
            .where(Event.delivery_id == delivery_id, DeliveryRecipient.variant.is_(None))
            .group_by(Event.variant)
        )  # fmt: skip
        return {variant: n for variant, n in rows}

    return _in_database(server, count)


def _open_some(server: Server, delivery_id: int, opened: dict[str, int]) -> None:
    """People open some of the test emails (recorded directly: the pixel's own tests are elsewhere)."""

    async def open_them(session: AsyncSession) -> None:
        for variant, count in opened.items():
            query = select(Message.id).join(Event, Event.id == Message.event_id).order_by(Message.id)
            ids = (await session.scalars(query.where(Event.delivery_id == delivery_id, Event.variant == variant))).all()
            await session.execute(update(Message).where(Message.id.in_(ids[:count])).values(opened_at=utcnow()))

    _in_database(server, open_them)


def _end_the_test(server: Server) -> None:
    """What the technical workflow does once the test's time is over: here, as if it were 5 hours later."""

    async def end(session: AsyncSession) -> Any:
        settings = Settings(database_url=server.env["ENVOI_DATABASE_URL"], data_dir=Path(server.env["ENVOI_DATA_DIR"]))
        return await run_round(session, settings, utcnow() + timedelta(hours=5))

    done = _in_database(server, end)
    assert (done.decided, done.waiting, done.queued) == (0, 1, 0)


def _setup(server: Server) -> None:
    """100 profiles and an audience of them (the demo data may have others), with the administrator's API key."""
    csv = "email,first_name,external_id,batch\n" + "".join(
        f"p{n}@example.com,First{n},ext-{n},nov\n" for n in range(100)
    )
    with server.api() as api:
        imported = api.post("/api/v1/profiles/import", content=csv, headers={"Content-Type": "text/csv"})
        assert imported.status_code == 200 and imported.json()["created"] == 100, imported.text
        made = api.post(
            "/api/v1/audiences",
            json={
                "name": "november",
                "label": "November",
                "filters": [{"field": "attributes.batch", "op": "eq", "value": "nov"}],
            },
        )
        assert made.status_code == 201, made.text


def _console(browser: Browser, server: Server, email: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Send now?", "Send variant B…?"
    log_in(page, server, email)
    page.wait_for_url(f"{server.url}/console/")
    page.goto(f"{server.url}/console/deliveries")
    expect(page.locator("#notifications")).to_have_attribute("data-stream", "open")
    return context, page


def _wait_for_sent(server: Server, delivery_id: int, count: int) -> None:
    deadline = time.monotonic() + 30
    with server.api() as api:
        while sum(row["sent"] for row in api.get(f"/api/v1/deliveries/{delivery_id}/figures").json()) < count:
            assert time.monotonic() < deadline, "the test emails were never sent"
            time.sleep(0.2)


def test_manual_mode_waits_for_a_variant_picked_in_the_browser(server: Server, browser: Browser) -> None:
    _setup(server)
    creator, page = _console(browser, server, CREATOR)
    outsider, other = _console(browser, server, OUTSIDER)

    page.get_by_role("link", name="New delivery", exact=True).click()
    page.fill("input[name=name]", "november")
    page.fill("input[name=label]", "November news")
    page.select_option("select[name=template]", label="A/B test email (ab_test_email, factory)")
    page.select_option("select[name=audience]", label="November (november)")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("p.flash")).to_contain_text("Delivery created")
    delivery_page = page.url.split("?")[0]
    delivery_id = int(delivery_page.rsplit("/", 1)[1])
    expect(page.locator("input[name=notifications]")).to_be_checked()
    page.select_option("select[name=winner_mode]", "manual")
    page.get_by_role("button", name="Save properties").click()
    expect(page.locator("p.flash")).to_have_text("Properties saved.")

    editor = http_log_in(server, EDITOR)  # another operator changes its label: an editor, told too
    html = editor.get(f"/console/deliveries/{delivery_id}").text
    changed = editor.post(f"/console/deliveries/{delivery_id}/properties", data={
        "label": "November news!", "audience": page.locator("select[name=audience]").input_value(),
        "notifications": "yes", "split_A": "10", "split_B": "10", "criterion": "open_rate", "duration": "4h",
        "winner_mode": "manual", "csrf_token": form_token(html, f"/console/deliveries/{delivery_id}/properties"),
    })  # fmt: skip
    assert changed.status_code == 303, changed.text

    page.reload()
    expect(page.locator("[data-ready]")).to_contain_text("to the 100 people its audience reaches now")
    screenshot(page, "delivery-draft")
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("p.flash")).to_contain_text("The A/B test has started")
    expect(page.locator("p.flash")).to_contain_text("(20 emails queued now.)")
    _wait_for_sent(server, delivery_id, 20)
    _open_some(server, delivery_id, {"A": 2, "B": 4})

    _end_the_test(server)  # manual mode: a variant must be selected, and nothing more goes out
    center = page.locator("#notifications")
    expect(center.locator(".bell-count")).to_have_text("1", timeout=10000)  # live: no reload
    center.locator(".bell-button").click()
    item = center.locator(".bell-item", has_text=TITLE)
    expect(item).to_have_class("bell-item unread")
    expect(item).to_contain_text("remaining 80 recipients")
    screenshot(page, "delivery-choice-notification")
    assert _rest_queued(server, delivery_id) == {}  # nothing for the rest until someone picks

    item.click()
    page.wait_for_url(delivery_page)
    expect(page.locator("[data-state]")).to_have_text("waiting for choice")
    expect(page.locator("[data-choice]")).to_contain_text("A variant must be selected")
    rows = page.locator("table.figures tbody tr")
    rest = "The rest of the audience (waits for the winner)"
    expect(rows.locator("th")).to_have_text(["Variant A", "Variant B", rest])
    expect(rows.nth(0).locator("td")).to_have_text(["10", "10", "2", "0", "0", "20.0 %", "0.0 %", "0.0 %"])
    expect(rows.nth(1).locator("td")).to_have_text(["10", "10", "4", "0", "0", "40.0 %", "0.0 %", "0.0 %"])
    expect(rows.nth(2).locator("td").first).to_have_text("80")
    screenshot(page, "delivery-waiting-for-choice")

    page.get_by_role("button", name="Send variant B to the remaining 80 recipients").click()
    page.wait_for_url(f"{delivery_page}?done=winner&queued=80")
    expect(page.locator("[data-state]")).to_have_text("sent")
    expect(page.locator("[data-winner]")).to_contain_text(f"variant B, chosen by {CREATOR}")
    expect(page.locator("[data-winner-actions]")).to_have_count(0)
    assert _rest_queued(server, delivery_id) == {"B": 80}
    screenshot(page, "delivery-winner-sent")

    told = editor.get("/api/v1/notifications").json()["items"]
    assert [n["title"] for n in told if n["objectType"] == "delivery"] == [TITLE]
    expect(other.locator("#notifications .bell-count")).to_be_hidden()  # open all along: nothing came live
    stored = other.request.get(f"{server.url}/api/v1/notifications").json()
    assert [n for n in stored["items"] if n["objectType"] == "delivery"] == []
    editor.close()
    outsider.close()

    # Where its audience came from: the live count follows the filters as they are typed.
    page.goto(f"{server.url}/console/audiences")
    page.get_by_role("link", name="november").click()
    live = page.locator("[data-live-count]")
    expect(live).to_have_text("These filters keep 100 profiles, 100 subscribed: a delivery would reach 100.")
    page.locator("textarea[name=filters]").fill('[{"field": "external_id", "op": "in", "value": ["ext-1", "ext-2"]}]')
    expect(live).to_have_text("These filters keep 2 profiles, 2 subscribed: a delivery would reach 2.")
    page.locator("textarea[name=filters]").fill('[{"field": "colour", "op": "eq", "value": 1}]')
    expect(live).to_contain_text("filters[0].field: unknown field 'colour'")
    screenshot(page, "audience-live-count")
    page.goto(f"{server.url}/console/profiles")
    expect(page.locator("table.profiles tbody tr")).to_have_count(50)  # a page at a time
    screenshot(page, "profiles-list")
    creator.close()
