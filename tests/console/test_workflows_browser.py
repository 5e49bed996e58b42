"""Workflows in Chromium, against ``envoi serve`` and its scheduler: a workflow whose HTTP call answers 500 is
suspended, the operator of its supervisors group who has the console open is told at once (no reload), and the
notification leads to the workflow's page, which names the failing activity; an operator outside the group is
told nothing. Then the definition editor: JSON checked as it is typed, a wrong definition refused with its paths."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.console.conftest import Server, log_in, screenshot

SUPERVISOR = "workflows@example.com"  # a member of workflow_supervisors
OUTSIDER = "admin@example.com"  # may do anything, but is not in workflow_supervisors
TITLE = "Workflow 'Nightly export' has an error"


class _Peer(ThreadingHTTPServer):
    daemon_threads = True
    status = 500
    calls = 0


class _Answer(BaseHTTPRequestHandler):
    server: _Peer

    def do_GET(self) -> None:
        self.server.calls += 1
        body = f"answer {self.server.status}".encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[_Peer]:
    """An HTTP server on 127.0.0.1 answering with ``status`` (500 to begin with)."""
    server = _Peer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _console(browser: Browser, server: Server, email: str) -> tuple[BrowserContext, Page]:
    """A browser of its own, logged in, on the workflows page with its live notifications open."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, server, email)
    page.wait_for_url(f"{server.url}/console/")
    page.goto(f"{server.url}/console/workflows")
    expect(page.locator("#notifications")).to_have_attribute("data-stream", "open")
    return context, page


def _definition(url: str) -> dict[str, Any]:
    return {
        "activities": [
            {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}, "next": ["call"]},
            {"name": "call", "kind": "http_request", "settings": {"url": url, "timeout": 5}, "next": ["end"]},
            {"name": "end", "kind": "end"},
        ]
    }


def test_a_failing_workflow_tells_its_supervisors_live_and_leads_to_its_error(
    server: Server, browser: Browser, peer: _Peer
) -> None:
    supervisor, page = _console(browser, server, SUPERVISOR)
    outsider, other = _console(browser, server, OUTSIDER)
    center = page.locator("#notifications")
    count = center.locator(".bell-count")
    expect(count).to_be_hidden()
    with server.api() as api:  # an administrator's key
        made = api.post("/api/v1/workflows", json={
            "name": "nightly-export", "label": "Nightly export", "supervisors": "workflow_supervisors",
            "definition": _definition(f"http://127.0.0.1:{peer.server_address[1]}/export"),
        })  # fmt: skip
        assert made.status_code == 201, made.text
        workflow_id = made.json()["id"]
        asked = time.monotonic()
        ran = api.post(f"/api/v1/workflows/{workflow_id}/runs")
        assert ran.status_code == 201, ran.text

    expect(count).to_have_text("1", timeout=10000)  # the scheduler ran it, it failed, the bell rang: no reload
    assert time.monotonic() - asked < 6, "the notification took more than a few seconds"
    assert peer.calls == 1
    center.locator(".bell-button").click()
    item = center.locator(".bell-item", has_text=TITLE)
    expect(item).to_have_class("bell-item unread")
    expect(item).to_contain_text("'call' failed")
    screenshot(page, "workflow-error-notification")

    item.click()
    page.wait_for_url(f"{server.url}/console/workflows/{workflow_id}")
    banner = page.locator("[data-error-banner]")
    expect(banner).to_be_visible()
    expect(banner.locator("[data-failed-activity]")).to_have_text("call")
    expect(banner.locator("[data-error]")).to_contain_text("answered HTTP 500")
    expect(page.locator("[data-state]")).to_have_text("error")
    expect(page.locator('svg.workflow-graph g.activity.failed[data-activity="call"]')).to_have_count(1)
    expect(page.locator("table.runs tbody tr").first).to_contain_text("suspended")
    screenshot(page, "workflow-error-page")

    expect(other.locator("#notifications .bell-count")).to_be_hidden()  # open all along: nothing came live
    other.reload()  # nor is anything stored for them
    expect(other.locator("#notifications")).to_have_attribute("data-stream", "open")
    stored = other.request.get(f"{server.url}/api/v1/notifications").json()
    assert [n for n in stored["items"] if "Nightly export" in n["title"]] == []
    expect(other.locator("#notifications .bell-item", has_text="Nightly export")).to_have_count(0)

    peer.status = 200  # the cause is fixed: resuming retries the failed call, and the run goes on to its end
    banner.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"{server.url}/console/workflows/{workflow_id}?done=resume")
    expect(page.locator("p.flash")).to_contain_text("Resumed")
    expect(page.locator("[data-error-banner]")).to_have_count(0)
    expect(page.locator("[data-state]")).to_have_text("started")
    page.goto(f"{server.url}/console/workflows/{workflow_id}/runs/{ran.json()['id']}")
    deadline = time.monotonic() + 10
    while not page.locator('table.steps tr[data-activity="end"]').count():
        assert time.monotonic() < deadline, "the resumed run never reached its end"
        time.sleep(0.5)
        page.reload()
    steps = page.locator("table.steps tbody tr")
    expect(steps.locator("td:nth-child(1)")).to_have_text(["start", "call", "call", "end"])
    expect(steps.locator("td:nth-child(3)")).to_have_text(["done", "failed", "done", "done"])
    expect(steps.nth(1)).to_contain_text("HTTP 500: answer 500")  # the failed call's log and error
    assert peer.calls == 2
    screenshot(page, "workflow-run-steps")
    supervisor.close()
    outsider.close()


def test_the_definition_editor_checks_json_as_typed_and_the_server_lists_each_problem(
    server: Server, page: Page
) -> None:
    log_in(page, server, SUPERVISOR)
    page.wait_for_url(f"{server.url}/console/")
    page.goto(f"{server.url}/console/workflows")
    page.get_by_role("link", name="New workflow", exact=True).click()
    page.fill("input[name=name]", "export")
    page.fill("input[name=label]", "Export")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("p.flash")).to_contain_text("Workflow created")
    workflow_page = page.url.split("?")[0]
    editor = page.locator("textarea[name=definition]")
    status = page.locator("[data-json-status]")
    expect(status).to_have_text("Valid JSON: 2 activities.")

    editor.fill('{"activities": [}')
    expect(status).to_contain_text("Not valid JSON")
    expect(editor).to_have_attribute("aria-invalid", "true")
    wrong = {"activities": [{"name": "start", "kind": "scheduler", "settings": {"cron": "every day"},
                             "next": ["ghost"]}]}  # fmt: skip
    editor.fill(json.dumps(wrong))
    page.get_by_role("button", name="Format").click()
    expect(status).to_have_text("Valid JSON: 1 activity.")
    assert editor.input_value() == json.dumps(wrong, indent=2)
    page.get_by_role("button", name="Save definition").click()

    problems = page.locator("[data-problems]")
    expect(problems).to_contain_text("The definition was not saved")
    expect(problems.locator("li")).to_have_count(2)
    expect(problems).to_contain_text("definition.activities[0].settings: expected 5 fields")
    expect(problems).to_contain_text("no activity is named 'ghost'")
    assert json.loads(editor.input_value()) == wrong  # kept as typed, to be corrected
    screenshot(page, "workflow-definition-refused")
    page.goto(workflow_page)  # nothing was saved: the page shows the stored definition
    assert [a["name"] for a in json.loads(editor.input_value())["activities"]] == ["start", "end"]
