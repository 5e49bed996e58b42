"""Operators created from the command line log on; Adobe templates import as Liquid drafts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from envoi.access.groups import key_principal
from envoi.access.models import Operator
from envoi.access.operators import check_login
from envoi.access.permissions import Permission
from envoi.access.service import authenticate
from envoi.events.schemas import EventTypeIn
from envoi.events.types import create_event_type
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.helpers import create_type

ADOBE_HTML = (
    "<p>Dear <%= rtEvent.ctx.customer.@lastName %>,</p>"
    "<p>Your <%= escapeXMLString(rtEvent.ctx.account.label) %> account: "
    '<a href="https://x.test/?e=<%= encodeURIComponent(rtEvent.email) %>">manage</a></p>'
    "<% if (rtEvent.ctx.vip) { %>VIP<% } %>"
)


def _envoi(*args: str, tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envoi", *args],
        input=stdin,
        env={"PATH": "/usr/bin:/bin", "ENVOI_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_operator_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    created = _envoi("operator", "create", "--email", "Ops@Example.com", "--name", "Ops", tmp_path=tmp_path,
                     stdin="a long enough password\n")  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    runtime = Runtime.create(Settings(data_dir=tmp_path / "data"))
    try:
        async with runtime.transaction() as session:
            operator = await check_login(session, "ops@example.com", "a long enough password")
            assert operator.name == "Ops"
            stored = await session.scalar(select(Operator.password_hash))
            assert stored and stored.startswith("$argon2") and "a long enough" not in stored
    finally:
        await runtime.aclose()
    again = _envoi("operator", "create", "--email", "ops@example.com", "--name", "Ops", tmp_path=tmp_path,
                   stdin="another long password\n")  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stdout
    assert "in no group yet" in created.stdout


async def test_operator_create_joins_groups_and_keys_carry_scopes(tmp_path: Path) -> None:
    editor = _envoi("operator", "create", "--email", "ed@example.com", "--name", "Ed", "--group", "template_editors",
                    "--group", "viewers", tmp_path=tmp_path, stdin="a long enough password\n")  # fmt: skip
    assert editor.returncode == 0 and "in template_editors, viewers" in editor.stdout, editor.stdout + editor.stderr
    unknown = _envoi("operator", "create", "--email", "x@example.com", "--name", "X", "--group", "wizards",
                     tmp_path=tmp_path, stdin="a long enough password\n")  # fmt: skip
    assert unknown.returncode == 1 and "no security group is named 'wizards'" in unknown.stdout
    key = _envoi("apikey", "create", "--name", "ed's laptop", "--operator", "ed@example.com", "--scope", "publish",
                 "--scope", "push_events", tmp_path=tmp_path)  # fmt: skip
    assert key.returncode == 0, key.stdout + key.stderr
    runtime = Runtime.create(Settings(data_dir=tmp_path / "data"))
    try:
        async with runtime.transaction() as session:
            assert await session.scalar(select(Operator.id).where(Operator.email == "x@example.com")) is None
            principal = await key_principal(session, await authenticate(session, key.stdout.strip().splitlines()[-1]))
            # The key asks for publish and push_events; Ed may publish but not push events: only publish is left.
            assert principal.permissions == {Permission.PUBLISH}
            assert principal.actor.startswith("ed@example.com (api key ")
    finally:
        await runtime.aclose()
    listed = _envoi("apikey", "list", tmp_path=tmp_path)
    assert "publish, push_events" in listed.stdout


async def test_import_adobe_template_over_the_api(api: httpx.AsyncClient) -> None:
    await create_type(api)
    response = await api.post(
        "/api/v1/templates/import-adobe",
        json={
            "name": "From Adobe",
            "eventType": "order_confirmation",
            "email": {"from": "shop@example.com", "subject": "Hello <%= rtEvent.ctx.customer.@lastName %>",
                      "html": ADOBE_HTML},
        },
    )  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["template"]["state"] == "draft"
    assert body["template"]["email"]["subject"] == 'Hello {{ ctx.customer["@lastName"] }}'
    html = body["template"]["email"]["html"]
    assert '{{ ctx.customer["@lastName"] }}' in html and "url_encode" in html
    assert [(u["field"], u["snippet"]) for u in body["unconverted"]] == [
        ("email.html", "<% if (rtEvent.ctx.vip) { %>"),
        ("email.html", "<% } %>"),
    ]


async def test_import_adobe_from_the_command_line(tmp_path: Path) -> None:
    page = tmp_path / "adobe.html"
    page.write_text(ADOBE_HTML)
    assert _envoi("migrate", tmp_path=tmp_path).returncode == 0
    runtime = Runtime.create(Settings(data_dir=tmp_path / "data"))
    try:
        async with runtime.transaction() as session:
            await create_event_type(session, EventTypeIn(name="welcome", label="Welcome"))
    finally:
        await runtime.aclose()
    args = ["--name", "x", "--from", "shop@example.com", "--subject", "Hi <%= rtEvent.ctx.customer.@lastName %>"]
    missing = _envoi("template", "import-adobe", str(page), "--event-type", "nope", *args, tmp_path=tmp_path)
    assert missing.returncode == 1 and "nope" in missing.stdout
    created = _envoi("template", "import-adobe", str(page), "--event-type", "welcome", *args, tmp_path=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Created draft template 1" in created.stdout
    assert "not converted in email.html: <% if (rtEvent.ctx.vip) { %>" in created.stdout
