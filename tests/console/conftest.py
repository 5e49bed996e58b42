"""The console as a user meets it: ``envoi serve`` as a real process (SQLite or PostgreSQL), operators made
with ``envoi operator create``, and Debian's Chromium driven by Playwright.

Screenshots go to ``test-artifacts/`` at the top of the checkout (not committed) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.demo import load_demo_data
from envoi.runtime import Runtime
from tests.conftest import BACKENDS, pg_database
from tests.processes import free_port, start_envoi, wait_for_text

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a long enough password"
# Who the console tests log in as: one operator per built-in group, plus one in no group at all.
OPERATORS = {
    "admin@example.com": "administrators",
    "editor@example.com": "template_editors",
    "workflows@example.com": "workflow_supervisors",
    "deliveries@example.com": "delivery_supervisors",
    "viewer@example.com": "viewers",
}


@dataclass
class Server:
    url: str
    api_key: str
    env: dict[str, str]  # the ENVOI_* variables it runs with: another process started with them shares its data
    directory: Path
    log: Path

    def envoi(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run another ``envoi`` command against the same data, as a second process."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | self.env
        return subprocess.run(
            [sys.executable, "-m", "envoi", *args], input=stdin, env=full_env, cwd=self.directory,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10)


def _make_operators(server: Server) -> None:
    for email, group in OPERATORS.items():
        made = server.envoi("operator", "create", "--email", email, "--name", email.split("@")[0].title(),
                            "--group", group, stdin=PASSWORD + "\n")  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
    made = server.envoi("operator", "create", "--email", "nobody@example.com", "--name", "Nobody",
                        stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr


@pytest.fixture(scope="session")
def operators_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database per backend where ``envoi operator create`` made the operators, once per run: each test's
    server starts from a copy (a file, or CREATE DATABASE ... TEMPLATE) instead of six more processes."""
    folder = tmp_path_factory.mktemp("console-template")
    sqlite_file = folder / "console.db"
    with pg_database("envoi_console_tpl") as pg_url:
        for url in (f"sqlite:///{sqlite_file}", pg_url):
            env = {"ENVOI_DATA_DIR": str(folder / "data"), "ENVOI_DATABASE_URL": url}
            _make_operators(Server("", "", env, folder, folder / "operators.log"))
        yield {"sqlite": str(sqlite_file), "postgresql": pg_url.rpartition("/")[2]}


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, operators_templates: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """``envoi serve`` with the demo data and one operator per built-in group (password ``PASSWORD``)."""
    with _database(request.param, tmp_path, operators_templates[request.param]) as database_url:
        # Workflows may call a test's HTTP peer on 127.0.0.1.
        env = {"ENVOI_DATA_DIR": str(tmp_path / "data"), "ENVOI_DATABASE_URL": database_url,
               "ENVOI_WORKFLOW_HTTP_ALLOW_PRIVATE_NETWORKS": "true"}  # fmt: skip
        port, log = free_port(), tmp_path / "serve.log"
        server = Server(f"http://127.0.0.1:{port}", "", env, tmp_path, log)
        process = start_envoi(["serve", "--port", str(port)], env=env, cwd=tmp_path, output=log.open("ab"))
        try:
            output = wait_for_text(log, "API key:")
            server.api_key = re.search(r"API key: (\S+)", output).group(1)  # type: ignore[union-attr]
            _wait_healthy(server.url, process, log)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _database:
    """A copy of the operators' template: SQLite in the test's folder, or a PostgreSQL database made for the test
    and dropped after it."""

    def __init__(self, backend: str, tmp_path: Path, template: str) -> None:
        self.backend, self.tmp_path, self.template = backend, tmp_path, template
        self._pg = pg_database("envoi_console", template=template) if backend == "postgresql" else None

    def __enter__(self) -> str:
        if self._pg is None:
            target = self.tmp_path / "console.db"
            shutil.copy(self.template, target)
            return f"sqlite:///{target}"
        return self._pg.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._pg is not None:
            self._pg.__exit__(*exc)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"envoi serve exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"envoi serve never became healthy:\n{log.read_text(errors='replace')}")


# Per module, not per session: sync Playwright keeps an event loop running while it is open, and no asyncio test
# (in this folder or any later one) can run until it is closed.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # fail, never skip: scripts/install puts it there
        pytest.fail(f"Chromium is not at {CHROMIUM}; run scripts/install", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def log_in(page: Page, server: Server, email: str, password: str = PASSWORD) -> None:
    """The login form of ``/console/login``: fields ``email`` and ``password``, a "Log in" button."""
    page.goto(f"{server.url}/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Logging in over HTTP, as a browser does: the login form's CSRF token (a hidden field, and a cookie), then the form.
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_PAGE_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def form_token(html: str, action: str | None = None) -> str:
    """The CSRF token in the form of a console page that posts to ``action`` (without one: the first form)."""
    if action is not None:
        form = re.search(rf'<form [^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
        assert form, f"the page has no form posting to {action}"
        html = form.group(1)
    found = _FORM_TOKEN.search(html)
    assert found, "the form has no CSRF token"
    return found.group(1)


def page_token(html: str) -> str:
    """The CSRF token in a console page's head, that scripts send as X-CSRF-Token."""
    found = _PAGE_TOKEN.search(html)
    assert found, "the page has no csrf-token meta tag"
    return found.group(1)


def http_log_in(server: Server, email: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=10)
    token = form_token(client.get("/console/login").text)
    answer = client.post("/console/login", data={"email": email, "password": password, "csrf_token": token})
    assert answer.status_code == 303, answer.text
    return client


@dataclass
class InProcess:
    """The application in the test's process (no worker), with the demo data and an operator per group."""

    runtime: Runtime
    api_key: str
    operator_ids: dict[str, int] = field(default_factory=dict)

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        app = create_app(self.runtime.settings, run_worker=False, runtime=self.runtime)
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://envoi.test", timeout=10)

    def api(self) -> httpx.AsyncClient:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.api_key}"
        return client

    async def log_in(self, email: str, *, address: str = "127.0.0.1") -> httpx.AsyncClient:
        client = self.client(address)
        token = form_token((await client.get("/console/login")).text)
        answer = await client.post("/console/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        return client


@pytest.fixture
async def in_process(runtime: Runtime) -> AsyncIterator[InProcess]:
    async with runtime.transaction() as session:
        await load_demo_data(session)
        _key, plaintext = await create_api_key(session, "console tests")
        made = InProcess(runtime, plaintext)
        for email, group in [*OPERATORS.items(), ("nobody@example.com", None)]:
            operator = await create_operator(session, email=email, name=email.split("@")[0].title(), password=PASSWORD)
            if group:
                await add_member(session, group, operator.id)
            made.operator_ids[email] = operator.id
    yield made
