"""The console in Debian's Chromium, against ``envoi serve``: logging in, the template editor's preview, a
form whose CSRF token was taken out, and a Viewer kept out of the operators page. Screenshots of the home page
and the editor go to test-artifacts/."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.conftest import Server, log_in, screenshot


def test_an_administrator_edits_a_template_with_its_preview_and_a_form_without_its_token_is_refused(
    server: Server, page: Page
) -> None:
    with server.api() as api:  # something for the home page's charts to show
        for n in range(6):
            event = {
                "type": "password_reset",
                "email": f"user{n}@example.com",
                "ctx": {"resetUrl": "https://x.example/r"},
            }
            assert api.post("/api/v1/events", json=event).status_code == 202
    log_in(page, server, "admin@example.com")
    page.wait_for_url(f"{server.url}/console/")
    expect(page.locator("h1")).to_have_text("Home")
    expect(page.locator("svg.chart")).to_have_count(3)
    screenshot(page, "console-home")

    page.goto(f"{server.url}/console/templates/1")
    preview = page.frame_locator("iframe[data-preview-frame]")
    expect(preview.locator("h1")).to_have_text("Thank you, Ada!")  # the event type's sample
    seed = page.locator("select[data-preview-seed] option", has_text="Amélie").get_attribute("value")
    page.select_option("select[data-preview-seed]", seed)
    expect(preview.locator("h1")).to_have_text("Merci, Amélie !")  # the seed's data, in its language
    screenshot(page, "console-template-editor")

    page.fill("input[name='email.subject']", "Order {{ ctx.orderId }} is on its way")
    page.click("button:has-text('Save draft')")
    expect(page.locator(".flash")).to_have_text("Draft saved.")
    expect(page.locator("[data-preview-headers]")).to_contain_text("Order A-1042 is on its way")

    page.goto(f"{server.url}/console/operators")
    page.fill("input[name=email]", "sneaky@example.com")
    page.fill("input[name=name]", "Sneaky")
    page.eval_on_selector("form[action='/console/operators'] input[name=csrf_token]", "input => input.remove()")
    page.click("button:has-text('Create operator')")
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("security token")
    page.goto(f"{server.url}/console/operators")
    expect(page.locator("main")).not_to_contain_text("sneaky@example.com")


def test_a_viewer_cannot_reach_the_operators_page(server: Server, page: Page) -> None:
    log_in(page, server, "viewer@example.com")
    page.wait_for_url(f"{server.url}/console/")
    expect(page.locator("header nav")).to_contain_text("Events")
    expect(page.locator("header nav")).not_to_contain_text("Operators")

    response = page.goto(f"{server.url}/console/operators")

    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("manage operators")
