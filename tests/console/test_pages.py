"""What the console's pages show and do, in the test's process: the home page's numbers, the template editor
and a template's life, events, the outbox, the quarantine, and the administrators' pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from envoi.channels.outbox import OutboxMessage
from envoi.delivery.quarantine import add_to_quarantine
from tests.conftest import drain
from tests.console.conftest import PASSWORD, InProcess, form_token

RESET = {"type": "password_reset", "ctx": {"firstName": "Ada", "resetUrl": "https://shop.example.com/r/1"}}


async def submit(client: httpx.AsyncClient, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Post a form of ``page`` as a browser would, with the page's CSRF token."""
    token = form_token((await client.get(page)).text, action)
    return await client.post(action, data={**data, "csrf_token": token})


async def post_unoffered(client: httpx.AsyncClient, page: str, action: str) -> httpx.Response:
    """Post to an action ``page`` offers no button for, with a valid CSRF token (the logout form's)."""
    html = (await client.get(page)).text
    assert f'action="{action}"' not in html
    return await client.post(action, data={"csrf_token": form_token(html, "/console/logout")})


async def push(in_process: InProcess, *events: dict[str, Any]) -> list[int]:
    async with in_process.api() as api:
        return [(await api.post("/api/v1/events", json=event)).json()["id"] for event in events]


def _row(html: str, label: str) -> list[str]:
    """The cells of the table row headed ``label``."""
    found = re.search(rf'<th scope="row">{label}</th>(.*?)</tr>', html, re.S)
    assert found, label
    return re.findall(r">(\d+)</td>", found.group(1))


async def test_home_shows_events_per_minute_the_queue_and_the_last_hours_messages(in_process: InProcess) -> None:
    await push(in_process, RESET | {"email": "a@example.com"}, RESET | {"email": "b@example.com"})
    await drain(in_process.runtime)
    await push(in_process, RESET | {"email": "c@example.com"})
    client = await in_process.log_in("viewer@example.com")

    home = (await client.get("/console/")).text

    assert "(3 in the last hour)" in home
    assert home.count('<svg class="chart') == 3
    assert _row(home, "waiting") == ["1"]  # the third; the first two went out
    assert _row(home, "email") == ["2", "0"]
    assert _row(home, "sms") == ["0", "0"]


async def test_event_types_are_created_and_changed_with_their_schema_and_sample(in_process: InProcess) -> None:
    client = await in_process.log_in("editor@example.com")
    new = {"name": "shipping_notice", "label": "Shipping notice", "defaultChannel": "", "fallbackChannel": "",
           "schema": '{"type": "object", "required": ["parcel"]}', "sample": '{"parcel": "XK-1"}'}  # fmt: skip

    bad = await submit(client, "/console/event-types/new", "/console/event-types/new", new | {"sample": "{parcel"})
    assert bad.status_code == 422 and 'id="sample-error">Not valid JSON' in bad.text
    bad = await submit(client, "/console/event-types/new", "/console/event-types/new", new | {"sample": "{}"})
    assert bad.status_code == 422 and 'id="sample-error">the sample does not match the schema' in bad.text
    made = await submit(client, "/console/event-types/new", "/console/event-types/new", new)

    assert made.headers["location"] == "/console/event-types/shipping_notice?done=saved"
    shown = (await client.get(made.headers["location"])).text
    assert "Event type saved." in shown and "&#34;XK-1&#34;" in shown
    edit = "/console/event-types/shipping_notice/edit"
    changed = await submit(client, edit, edit, new | {"label": "Parcel shipped", "fallbackChannel": "sms"})
    assert changed.status_code == 303
    assert "Parcel shipped" in (await client.get("/console/event-types")).text
    viewer = await in_process.log_in("viewer@example.com")
    assert (await viewer.get(edit)).status_code == 403


async def test_the_editor_saves_a_draft_and_shows_each_error_next_to_its_field(in_process: InProcess) -> None:
    client = await in_process.log_in("editor@example.com")
    page = await client.get("/console/templates/2")
    assert 'name="email.subject"' in page.text and 'value="Reset your password"' in page.text
    fields = {"name": "Password reset", "language": "en", "email.from": "Shop <shop@example.com>",
              "email.subject": "Your new password, {{ ctx.firstName }}", "email.bodyKind": "html",
              "email.body": "<p>Go to {{ ctx.resetUrl }}</p>", "email.text": "", "variants": ""}  # fmt: skip

    saved = await submit(client, "/console/templates/2", "/console/templates/2", fields)

    assert saved.status_code == 303 and saved.headers["location"] == "/console/templates/2?done=saved"
    assert "Draft saved." in (await client.get(saved.headers["location"])).text
    async with in_process.api() as api:
        assert (await api.get("/api/v1/templates/2")).json()["email"]["subject"].startswith("Your new password")

    broken = await submit(client, "/console/templates/2", "/console/templates/2",
                          fields | {"email.subject": "Hello {{ ctx.firstName", "variants": "{not json"})  # fmt: skip
    assert broken.status_code == 422
    assert re.search(r'id="variants-error">Not valid JSON', broken.text)
    assert 'value="Hello {{ ctx.firstName"' in broken.text  # what was typed stays
    broken = await submit(client, "/console/templates/2", "/console/templates/2",
                          fields | {"email.subject": "Hello {{ ctx.firstName"})  # fmt: skip
    assert broken.status_code == 422 and 'id="email.subject-error">email.subject, line 1' in broken.text


async def test_a_template_is_published_paused_resumed_and_unpublished_with_its_versions_diffed(
    in_process: InProcess,
) -> None:
    editor = await in_process.log_in("editor@example.com")
    fields = {"name": "Password reset", "language": "en", "email.from": "Shop <shop@example.com>",
              "email.subject": "Reset it now", "email.bodyKind": "html",
              "email.body": '<p><a href="{{ ctx.resetUrl }}">Reset</a></p>'}  # fmt: skip
    await submit(editor, "/console/templates/2", "/console/templates/2", fields)

    published = await submit(editor, "/console/templates/2", "/console/templates/2/publish", {})

    assert published.headers["location"] == "/console/templates/2?done=published"
    versions = (await editor.get("/console/templates/2/versions?from=1&to=2")).text
    assert '<span class="removed">-Reset your password</span>' in versions
    assert '<span class="added">+Reset it now</span>' in versions
    for action, state in (("pause", "paused"), ("resume", "published"), ("unpublish", "draft")):
        done = await submit(editor, "/console/templates/2", f"/console/templates/2/{action}", {})
        assert done.status_code == 303, done.text
        assert f'status-{state}">' in (await editor.get("/console/templates/2")).text

    await submit(editor, "/console/templates/2", "/console/templates/2", fields | {"email.subject": "{{ ctx.nope }}"})
    refused = await submit(editor, "/console/templates/2", "/console/templates/2/publish", {})
    assert refused.status_code == 422 and "Not published: fix these first." in refused.text and "nope" in refused.text

    viewer = await in_process.log_in("viewer@example.com")
    assert '<fieldset class="plain" disabled>' in (await viewer.get("/console/templates/2")).text
    assert (await post_unoffered(viewer, "/console/templates/2", "/console/templates/2/publish")).status_code == 403


async def test_a_new_sms_template_is_created_from_the_console(in_process: InProcess) -> None:
    client = await in_process.log_in("editor@example.com")
    data = {"name": "Reset by SMS", "eventType": "password_reset", "channel": "sms", "language": "en",
            "sms.text": "Reset: {{ ctx.resetUrl }}", "email.subject": "ignored: not this channel"}  # fmt: skip

    made = await submit(client, "/console/templates/new", "/console/templates/new", data)

    assert made.status_code == 303
    editor = (await client.get(made.headers["location"])).text
    assert "Template created." in editor and 'name="sms.text"' in editor and 'name="email.subject"' not in editor
    missing = await submit(client, "/console/templates/new", "/console/templates/new", data | {"sms.text": ""})
    assert missing.status_code == 422 and 'id="sms.text-error"' in missing.text


async def test_events_are_searched_and_shown_with_their_timeline_and_messages(in_process: InProcess) -> None:
    first, second = await push(
        in_process, RESET | {"email": "ann@example.com", "externalId": "order-1"}, RESET | {"email": "bob@example.com"}
    )
    await drain(in_process.runtime)
    client = await in_process.log_in("viewer@example.com")
    today = datetime.now(UTC).date()

    def found(html: str) -> set[int]:
        return {int(i) for i in re.findall(r'<a href="/console/events/(\d+)">', html)}

    assert found((await client.get("/console/events")).text) == {first, second}
    assert found((await client.get("/console/events?address=ANN@example.com")).text) == {first}
    assert found((await client.get("/console/events?externalId=order-1")).text) == {first}
    assert found((await client.get("/console/events?status=processed&type=password_reset")).text) == {first, second}
    assert found((await client.get("/console/events?status=pending")).text) == set()
    assert found((await client.get(f"/console/events?from={today}&to={today}")).text) == {first, second}
    assert found((await client.get(f"/console/events?from={today + timedelta(days=1)}")).text) == set()
    assert "A date as YYYY-MM-DD." in (await client.get("/console/events?from=yesterday")).text

    event = (await client.get(f"/console/events/{first}")).text
    assert "status-processed" in event and "Reset your password" in event
    assert re.search(r'<a href="/console/outbox/\d+">outbox</a>', event)
    assert (await client.get("/console/events/999999")).status_code == 404


async def test_the_outbox_shows_an_email_in_a_sandboxed_frame_never_in_the_page(in_process: InProcess) -> None:
    html = '<p onclick="steal()">Hi "you"</p><script>alert(1)</script>'
    async with in_process.runtime.transaction() as session:
        session.add(OutboxMessage(channel="email", sender="shop@example.com", recipient="ann@example.com",
                                  subject="Hello", html=html, text="Hi you"))  # fmt: skip
        session.add(OutboxMessage(channel="sms", sender="Shop", recipient="+33612345678", text="Code ✓ 1234"))
    client = await in_process.log_in("viewer@example.com")

    email = await client.get("/console/outbox/1")

    assert "<script>alert(1)" not in email.text and 'onclick="steal' not in email.text
    frame = re.search(r"<iframe [^>]*>", email.text)
    assert frame and 'sandbox=""' in frame.group(0)
    assert 'srcdoc="&lt;p onclick=&#34;steal()&#34;&gt;Hi &#34;you&#34;&lt;/p&gt;&lt;script&gt;' in frame.group(0)
    assert "script-src 'self'" in email.headers["content-security-policy"]
    sms = (await client.get("/console/outbox/2")).text
    assert "Code ✓ 1234" in sms and "UCS-2, 1 part" in sms and "<iframe" not in sms
    listing = (await client.get("/console/outbox?channel=sms")).text
    assert "/console/outbox/2" in listing and "/console/outbox/1" not in listing


async def test_delivery_supervisors_release_quarantined_addresses(in_process: InProcess) -> None:
    async with in_process.runtime.transaction() as session:
        await add_to_quarantine(session, [("email", "gone@example.com", "550 no such user")])
    viewer = await in_process.log_in("viewer@example.com")
    assert "550 no such user" in (page := (await viewer.get("/console/quarantine")).text)
    assert "Release" not in page
    supervisor = await in_process.log_in("deliveries@example.com")

    released = await submit(supervisor, "/console/quarantine", "/console/quarantine/release",
                            {"channel": "email", "address": "gone@example.com"})  # fmt: skip

    assert released.status_code == 303
    assert "gone@example.com was released" in (await supervisor.get(released.headers["location"])).text
    assert "550 no such user" not in (await supervisor.get("/console/quarantine")).text
    admin = await in_process.log_in("admin@example.com")
    assert "email:gone@example.com" in (await admin.get("/console/audit?objectType=quarantine")).text


async def test_administrators_manage_operators_and_their_groups(in_process: InProcess) -> None:
    admin = await in_process.log_in("admin@example.com")
    new = {"email": "new@example.com", "name": "Newcomer", "password": PASSWORD, "groups": ["template_editors"]}

    made = await submit(admin, "/console/operators", "/console/operators", new)

    assert made.status_code == 303
    newcomer = await in_process.log_in("new@example.com")
    assert (await newcomer.get("/console/templates/new")).status_code == 200
    again = await submit(admin, "/console/operators", "/console/operators", new)
    assert again.status_code == 422 and 'id="email-error">an operator with the email' in again.text
    short = await submit(admin, "/console/operators", "/console/operators", new | {"email": "x@example.com",
                                                                                   "password": "short"})  # fmt: skip
    assert short.status_code == 422 and 'id="password-error"' in short.text

    page = made.headers["location"].split("?")[0]
    regrouped = await submit(admin, page, page + "/groups", {"groups": ["viewers"]})
    assert regrouped.status_code == 303
    assert (await newcomer.get("/console/templates/new")).status_code == 403
    generated = await submit(admin, "/console/operators", "/console/operators",
                             {"email": "temp@example.com", "name": "Temp"})  # fmt: skip
    assert "one-time password, shown this once" in generated.text

    me = f"/console/operators/{in_process.operator_ids['admin@example.com']}"
    refused = await post_unoffered(admin, me, me + "/deactivate")
    assert refused.status_code == 422 and "You cannot deactivate yourself." in refused.text
    refused = await submit(admin, me, me + "/groups", {"groups": ["viewers"]})
    assert refused.status_code == 422 and "administrators" in refused.text
    log = (await admin.get("/console/audit?objectType=operator")).text
    assert "new@example.com" in log and "&#34;groups&#34;: [&#34;viewers&#34;]" in log


async def test_administrators_make_custom_groups(in_process: InProcess) -> None:
    admin = await in_process.log_in("admin@example.com")
    made = await submit(admin, "/console/groups", "/console/groups",
                        {"name": "auditors", "label": "Auditors", "permissions": ["view_events"]})  # fmt: skip
    assert made.status_code == 303
    changed = await submit(admin, "/console/groups/auditors", "/console/groups/auditors",
                           {"label": "Auditors", "permissions": ["view_events", "manage_deliveries"]})  # fmt: skip
    assert changed.status_code == 303
    assert "manage deliveries, view events" in (await admin.get("/console/groups")).text
    bad = await submit(admin, "/console/groups", "/console/groups", {"name": "Bad Name", "label": "x"})
    assert bad.status_code == 422 and 'id="name-error"' in bad.text
    assert (await post_unoffered(admin, "/console/groups/viewers", "/console/groups/viewers/delete")).status_code == 409

    deleted = await submit(admin, "/console/groups/auditors", "/console/groups/auditors/delete", {})

    assert deleted.headers["location"] == "/console/groups?done=deleted"
    assert "auditors" not in (await admin.get("/console/groups")).text


async def test_an_api_key_is_shown_once_shows_its_last_use_and_can_be_revoked(in_process: InProcess) -> None:
    admin = await in_process.log_in("admin@example.com")

    made = await submit(admin, "/console/api-keys", "/console/api-keys",
                        {"name": "billing", "owner": "", "scopes": ["push_events", "view_events"]})  # fmt: skip

    key = re.search(r"<code class=\"copy\" data-new-key>(envoi_[\w-]+)</code>", made.text)
    assert made.status_code == 200 and key
    plaintext = key.group(1)
    async with in_process.client() as api:
        headers = {"Authorization": f"Bearer {plaintext}"}
        assert (await api.get("/api/v1/event-types", headers=headers)).status_code == 200
        listing = (await admin.get("/console/api-keys")).text
        assert plaintext not in listing
        row = re.search(r"<td>billing</td>.*?</tr>", listing, re.S)
        assert row and "never" not in row.group(0)  # its last use is shown
        key_id = re.search(r"/console/api-keys/(\d+)/revoke", row.group(0))
        assert key_id
        revoked = await submit(admin, "/console/api-keys", f"/console/api-keys/{key_id.group(1)}/revoke", {})
        assert revoked.status_code == 303
    async with in_process.client() as fresh:  # a new app: the old one may hold the key in its cache for seconds
        assert (await fresh.get("/api/v1/event-types", headers=headers)).status_code == 401
    none = await submit(admin, "/console/api-keys", "/console/api-keys", {"name": "empty", "owner": ""})
    assert none.status_code == 422 and 'id="scopes-error"' in none.text
