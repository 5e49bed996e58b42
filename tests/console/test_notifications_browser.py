"""The notification center in Chromium: a notification made by another process (``envoi notify``) appears in
the open console without a reload and the unread count goes up; clicking it marks it read and lands on its
object, and the count goes down."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.console.conftest import Server, log_in, screenshot

WHO = "deliveries@example.com"  # a member of delivery_supervisors


def _notify(server: Server, *args: str) -> float:
    """Run ``envoi notify`` as another process; returns when it ended (the notification is committed)."""
    made = server.envoi("notify", *args)
    assert made.returncode == 0, made.stdout + made.stderr
    return time.monotonic()


def test_a_notification_from_another_process_appears_live_and_leads_to_its_object(server: Server, page: Page) -> None:
    log_in(page, server, WHO)
    page.wait_for_url(f"{server.url}/console/")
    center = page.locator("#notifications")
    count = center.locator(".bell-count")
    expect(center).to_have_attribute("data-stream", "open")
    expect(count).to_be_hidden()  # nothing unread yet

    _notify(server, "--operator", WHO, "--title", "Weekly delivery report", "--body", "All providers answered.")
    expect(count).to_have_text("1")
    done = _notify(
        server, "--group", "delivery_supervisors", "--category", "action_required",
        "--title", "Order confirmation needs a look", "--body", "Its template was changed an hour ago.",
        "--link", "/console/templates/1",
    )  # fmt: skip
    expect(count).to_have_text("2", timeout=2000)
    assert time.monotonic() - done < 1.5, "the count went up more than a second after the notification"

    center.locator(".bell-button").click()
    panel = center.locator(".bell-panel")
    expect(panel).to_be_visible()
    groups = panel.locator(".bell-group h3")
    expect(groups).to_have_text(["Action required", "Information"])  # grouped, action first
    item = panel.locator(".bell-item", has_text="Order confirmation needs a look")
    expect(item).to_have_class("bell-item unread")
    expect(item.locator("time")).to_have_text("just now")
    screenshot(page, "notifications-panel")

    item.click()
    page.wait_for_url(f"{server.url}/console/templates/1")
    expect(center).to_have_attribute("data-stream", "open")
    expect(count).to_have_text("1")  # the other one is still unread
    center.locator(".bell-button").click()
    expect(center.locator(".bell-item", has_text="Order confirmation needs a look")).to_have_class("bell-item")

    center.locator(".bell-read-all").click()
    expect(count).to_be_hidden()
    expect(center.locator(".bell-item.unread")).to_have_count(0)
