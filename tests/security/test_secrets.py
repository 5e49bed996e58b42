"""Secrets never leave through the logs, the API's answers or the console's pages.

``envoi serve`` runs as a user runs it (debug logs on), with an SMTP password in ENVOI_SMTP_URL that the server
refuses, a tracking secret, and on PostgreSQL a password in the database URL. A realistic session then
configures providers with passwords and keys (and gets some wrong), creates API keys and an operator, logs in
(once with a typo), pushes events over REST and SOAP that fail at every provider, and reads every console page.
Every line the process printed (structlog, stdlib logging, uvicorn) and every answer it gave are searched for
every secret. The only answers that may hold one are those whose job is to hand it over once: a new API key,
a new webhook's secret, SOAP Logon's token, and the login's Set-Cookie."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from envoi.app import create_app
from envoi.settings import Settings
from tests.processes import free_port, start_envoi, wait_for_text
from tests.security.callers import envelope, soap_texts
from tests.security.test_auth_matrix import routes_of
from tests.smtp_sink import SmtpSink, start_sink


def _secret(what: str) -> str:
    """A secret that says what it is, in characters every format carries as they are (URLs, JSON, HTML)."""
    return re.sub(r"[^a-z0-9]+", "-", what.lower()) + "-" + secrets.token_hex(12)


@dataclass
class Envoi:
    url: str
    log: Path
    startup_key: str
    secrets: dict[str, str]  # what it is -> the secret
    process: subprocess.Popen[bytes]
    answers: list[httpx.Response] = field(default_factory=list)
    handed_over: list[tuple[httpx.Response, str]] = field(default_factory=list)  # an answer that gives a secret

    def api(self, key: str | None = None) -> httpx.Client:
        """A client of the API with ``key`` (the key ``envoi serve`` printed, unless told otherwise)."""
        client = self.browser()
        client.headers["Authorization"] = f"Bearer {key or self.startup_key}"
        return client

    def browser(self) -> httpx.Client:
        """A client with no credential but the cookies it is given; every answer it gets is kept."""
        return httpx.Client(base_url=self.url, timeout=15, event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.answers.append(response)

    def hands_over(self, response: httpx.Response, secret: str) -> str:
        assert secret and secret in response.text + str(response.headers.get_list("set-cookie")), response.text
        self.handed_over.append((response, secret))
        return secret


@pytest.fixture
def smtp_sink_with_auth() -> Iterator[SmtpSink]:
    sink = start_sink(tls=True, username="envoi", password=_secret("the-sinks-own-password"))
    yield sink
    sink.stop()


@pytest.fixture
def envoi(database_url: str, tmp_path: Path, smtp_sink_with_auth: SmtpSink) -> Iterator[Envoi]:
    sink = smtp_sink_with_auth
    known = {"SMTP password (environment)": _secret("env-smtp-password"), "tracking secret": _secret("tracking")}
    if database_url.startswith("postgresql://postgres@"):  # the server trusts local connections: any password works
        known["database password"] = _secret("db-password")
        database_url = database_url.replace("postgres@", f"postgres:{known['database password']}@", 1)
    env = {
        "ENVOI_DATA_DIR": str(tmp_path / "data"),
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_SMTP_URL": f"smtp://envoi:{known['SMTP password (environment)']}@{sink.host}:{sink.port}?starttls=true",
        "ENVOI_SMTP_CA_FILE": str(sink.ca_file),
        "ENVOI_PROVIDER_FILES_DIR": str(sink.ca_file.parent),  # the provider made over the API names the CA too
        "ENVOI_TRACKING_SECRET": known["tracking secret"],
        "ENVOI_LOG_LEVEL": "debug",
        "ENVOI_RETRY_BASE_DELAY": "0.2",
        "ENVOI_RETRY_MAX_DELAY": "1",
        "ENVOI_PROVIDER_FAILOVER_AFTER": "2",
    }
    port, log = free_port(), tmp_path / "serve.log"
    process = start_envoi(["serve", "--port", str(port)], env=env, cwd=tmp_path, output=log.open("ab"))
    try:
        banner = wait_for_text(log, "Try it:", timeout=60)  # migrations first, on a machine shared with others
        key = re.search(r"API key: (\S+)", banner).group(1)  # type: ignore[union-attr]
        running = Envoi(f"http://127.0.0.1:{port}", log, key, known, process)
        _wait_healthy(running)
        yield running
    finally:
        _stop(process)


def _wait_healthy(envoi: Envoi) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{envoi.url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(envoi.log.read_text(errors="replace"))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _p256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def _configure_providers(envoi: Envoi, sink: SmtpSink) -> None:
    """Providers with secrets, through the API: each refuses us or cannot be reached, and some are mistyped."""
    s = envoi.secrets
    closed = free_port()  # nothing listens there: the push and SMS providers cannot be reached
    pem = _p256_pem()
    s["APNs private key"] = max(pem.splitlines(), key=len)  # a line of the key's body, as it would leak
    s |= {what: _secret(what) for what in (
        "SMTP password (API)", "SMTP password (API, changed)", "SMTP password (refused URL)", "Kannel password",
        "Kannel receipt secret", "not a PEM key",
    )}  # fmt: skip
    relay = f"{sink.host}:{sink.port}?starttls=true"
    good = {
        "relay-api": ("smtp", "backup", {"url": f"smtp://envoi:{s['SMTP password (API)']}@{relay}",
                                         "ca_file": str(sink.ca_file)}),
        "apple": ("apns", "default", {"team_id": "ABCDE12345", "key_id": "KEY1234567", "private_key": pem,
                                      "topic": "com.example.shop", "url": f"https://127.0.0.1:{closed}"}),
        "sms-gw": ("kannel", "default", {"sendsms_url": f"http://127.0.0.1:{closed}/cgi-bin/sendsms",
                                         "username": "envoi", "password": s["Kannel password"],
                                         "receipt_url": f"{envoi.url}/receipts/sms-gw",
                                         "receipt_secret": s["Kannel receipt secret"]}),
    }  # fmt: skip
    bad = [
        ("smtp", {"url": f"smtp://envoi:{s['SMTP password (refused URL)']}@{sink.host}:99999"}),
        ("apns", good["apple"][2] | {"private_key": f"-----BEGIN PRIVATE KEY-----\n{s['not a PEM key']}\n-----END"}),
        ("kannel", good["sms-gw"][2] | {"sendsms_url": "ftp://127.0.0.1/sendsms"}),
        ("kannel", good["sms-gw"][2] | {"password": {"nested": s["Kannel password"]}}),
    ]
    with envoi.api() as api:
        for name, (kind, role, settings) in good.items():
            made = api.post("/api/v1/providers", json={"name": name, "kind": kind, "role": role, "settings": settings})
            assert made.status_code == 201, made.text
        for index, (kind, settings) in enumerate(bad):
            refused = api.post("/api/v1/providers", json={"name": f"typo-{index}", "kind": kind, "settings": settings})
            assert refused.status_code == 422, refused.text
        cut_short = (
            b'{"name": "cut", "kind": "smtp", "settings": {"url": "smtp://envoi:' + s["SMTP password (API)"].encode()
        )
        assert api.post("/api/v1/providers", content=cut_short, headers={"Content-Type": "application/json"}).is_error
        changed = api.patch(
            "/api/v1/providers/relay-api", json={"settings": {"password": s["SMTP password (API, changed)"]}}
        )
        assert changed.status_code == 200, changed.text


def _push_events(envoi: Envoi, key: str) -> list[int]:
    """An email (refused by the SMTP server), an SMS (Kannel unreachable) and an iOS push (APNs unreachable)."""
    with envoi.api(key) as api:
        for channel, content in (("sms", {"text": "Parcel {{ ctx.parcel }}"}), ("push", {"body": "Parcel left"})):
            api.post("/api/v1/event-types", json={"name": f"parcel_{channel}", "label": "Parcel"})
            made = api.post("/api/v1/templates", json={"name": channel, "eventType": f"parcel_{channel}",
                                                       "channel": channel, channel: content})  # fmt: skip
            assert api.post(f"/api/v1/templates/{made.json()['id']}/publish").status_code == 200
        events = [
            {"type": "password_reset", "email": "ada@example.com", "ctx": {"resetUrl": "https://example.com/r/1"}},
            {"type": "parcel_sms", "mobilePhone": "+33612345678", "wishedChannel": "sms", "ctx": {"parcel": "XK-1"}},
            {"type": "parcel_push", "wishedChannel": "push", "platform": "ios", "registrationToken": "ab" * 32},
        ]
        return [api.post("/api/v1/events", json=event).json()["id"] for event in events]


def _wait_for_failures(envoi: Envoi, event_ids: list[int]) -> None:
    deadline = time.monotonic() + 60
    with envoi.api() as api:
        while time.monotonic() < deadline:
            failed = [api.get(f"/api/v1/events/{event_id}").json()["errorCount"] for event_id in event_ids]
            log = envoi.log.read_text(errors="replace")
            if min(failed) >= 3 and "smtp.auth_failed" in log and "kannel.unreachable" in log:
                return
            time.sleep(0.3)
    raise AssertionError(f"the providers never failed: {failed}")


def _use_the_console(envoi: Envoi, ids: dict[str, str]) -> None:
    """A login with a typo, then the right one, then every page of the console."""
    s = envoi.secrets
    with envoi.browser() as browser:
        for password, wanted in ((s["a mistyped password"], 401), (s["operator password"], 303)):
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/console/login").text)
            assert token is not None
            form = {"email": "ops@example.com", "password": password, "csrf_token": token.group(1)}
            answer = browser.post("/console/login", data=form)
            assert answer.status_code == wanted, answer.text
        s["console session token"] = envoi.hands_over(answer, browser.cookies["envoi_session"])
        pages = [path for method, path in routes_of(create_app(Settings(), run_worker=False))
                 if method == "GET" and path.startswith("/console/") and path != "/console/login"]  # fmt: skip
        for page in pages:
            answer = browser.get(re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "1"), page))
            assert answer.status_code in (200, 404), f"{page}: {answer.status_code}"


def _use_soap(envoi: Envoi) -> None:
    s = envoi.secrets
    with envoi.browser() as soap:

        def call(action: str, operation: str, namespace: str = "urn:nms:rtEvent") -> httpx.Response:
            return soap.post("/nl/jsp/soaprouter.jsp", content=envelope(operation, namespace).encode(),
                             headers={"SOAPAction": action, "Content-Type": "text/xml"})  # fmt: skip

        login = (
            f"<urn:strLogin>ops@example.com</urn:strLogin><urn:strPassword>{s['operator password']}</urn:strPassword>"
        )
        logon = call("xtk:session#Logon", f"<urn:Logon><urn:sessiontoken/>{login}</urn:Logon>", "urn:xtk:session")
        (token,) = soap_texts(etree.fromstring(logon.content), "pstrSessionToken")
        s["SOAP session token"] = envoi.hands_over(logon, token)
        event = '<rtEvent type="password_reset" email="bo@example.com"><ctx><resetUrl>https://e.com/r</resetUrl></ctx>'
        event += "</rtEvent>"
        for credential in (
            token,
            f"ops@example.com/{s['operator password']}",
            f"ops@example.com/{s['a mistyped password']}",
        ):
            call("nms:rtEvent#PushEvent", f"<urn:PushEvent><urn:sessiontoken>{credential}</urn:sessiontoken>"
                 f"<urn:domEvent>{event}</urn:domEvent></urn:PushEvent>")  # fmt: skip
        call(
            "xtk:session#Logoff",
            f"<urn:Logoff><urn:sessiontoken>{token}</urn:sessiontoken></urn:Logoff>",
            "urn:xtk:session",
        )


def _read_everything(envoi: Envoi, ids: dict[str, str]) -> None:
    with envoi.api() as api:
        for path in ("/api/v1/providers", "/api/v1/providers/relay-api", "/api/v1/providers/apple",
                     "/api/v1/providers/sms-gw", "/api/v1/providers/smtp", "/api/v1/audit", "/api/v1/api-keys",
                     "/api/v1/operators", "/api/v1/webhooks", f"/api/v1/webhooks/{ids['webhook_id']}",
                     "/api/v1/events", "/api/v1/outbox", "/api/v1/reports", "/metrics", "/api/v1/me"):  # fmt: skip
            assert api.get(path).status_code == 200, path


def _people_keys_and_hooks(envoi: Envoi) -> dict[str, str]:
    """An operator with a password, two API keys (one revoked), a webhook with its secret; returns their ids."""
    s = envoi.secrets
    with envoi.api() as api:
        operator = {"email": "ops@example.com", "name": "Ops", "password": s["operator password"],
                    "groups": ["administrators"]}  # fmt: skip
        made = api.post("/api/v1/operators", json=operator)
        assert made.status_code == 201, made.text
        for name in ("shop", "retired"):
            answer = api.post("/api/v1/api-keys", json={"name": name})
            s[f"API key ({name})"] = envoi.hands_over(answer, answer.json()["key"])
        assert api.delete(f"/api/v1/api-keys/{answer.json()['id']}").status_code == 204
        hook = {"url": "https://crm.example.com/envoi", "changes": ["event.delivery_failed"],
                "secret": s["webhook secret"]}  # fmt: skip
        webhook = api.post("/api/v1/webhooks", json=hook)
        envoi.hands_over(webhook, s["webhook secret"])
    for refused in (s["API key (retired)"], s["a guessed API key"], "envoi_" + s["a guessed API key"]):
        with envoi.api(refused) as stranger:
            assert stranger.get("/api/v1/me").status_code == 401
            assert stranger.post("/api/v1/events", json={"type": "x"}).status_code == 401
    return {"operator_id": str(made.json()["id"]), "webhook_id": str(webhook.json()["id"])}


def _leaks(envoi: Envoi, log: str) -> list[str]:
    found = [f"the log holds the {what}" for what, secret in envoi.secrets.items() if secret in log]
    allowed = {(id(response), secret) for response, secret in envoi.handed_over}
    for answer in envoi.answers:
        shown = answer.text + str(answer.headers.multi_items())
        for what, secret in envoi.secrets.items():
            if secret in shown and (id(answer), secret) not in allowed:
                found.append(
                    f"{answer.request.method} {answer.request.url.path} ({answer.status_code}) shows the {what}"
                )
    return found


def test_no_secret_reaches_a_log_line_an_answer_or_a_page(envoi: Envoi, smtp_sink_with_auth: SmtpSink) -> None:
    s = envoi.secrets
    s |= {what: _secret(what) for what in ("operator password", "a mistyped password", "webhook secret",
                                           "a guessed API key")}  # fmt: skip
    banner_keys = envoi.log.read_text(errors="replace").count(envoi.startup_key)

    ids = _people_keys_and_hooks(envoi)
    _configure_providers(envoi, smtp_sink_with_auth)
    event_ids = _push_events(envoi, s["API key (shop)"])
    _wait_for_failures(envoi, event_ids)
    _use_the_console(envoi, ids | {"event_id": str(event_ids[0]), "name": "password_reset"})
    _use_soap(envoi)
    _read_everything(envoi, ids)
    _stop(envoi.process)  # every line is written

    log = envoi.log.read_text(errors="replace")
    assert "smtp.auth_failed" in log and "console.login_failed" in log  # the failures were logged, without secrets
    assert log.count(envoi.startup_key) == banner_keys, "the startup key is printed once, in the banner, never logged"
    assert _leaks(envoi, log) == []
    assert len(envoi.answers) > 90 and len(s) >= 17  # what the README's figures count (18 on PostgreSQL)


LOGGING_BY_MISTAKE = """
import logging, structlog
from envoi.observability.logging import configure_logging
configure_logging("debug")
log = structlog.get_logger("envoi.somewhere")
log.warning("db.unreachable", url="postgresql://envoi:{secret}@db.internal/envoi", password="{secret}")
logging.getLogger("a.library").warning("connecting to %s", "smtp://envoi:{secret}@relay.example.net:587")
try:
    raise ConnectionError("cannot reach smtps://envoi:{secret}@relay.example.net")
except ConnectionError:
    log.exception("smtp.unexpected_error")
"""


def test_a_secret_logged_by_mistake_is_masked(tmp_path: Path) -> None:
    """The net under the rule: a URL's password, or a value logged under a secret's name, never reaches the log."""
    secret = _secret("logged by mistake")
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_BY_MISTAKE.format(secret=secret)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    for masked in (
        "postgresql://envoi:**********@db.internal",
        "password=**********",
        "smtp://envoi:**********@relay.example.net:587",
        "smtps://envoi:**********@relay.example.net",
    ):
        assert masked in done.stderr, done.stderr  # the rest of the line is kept: where, what, which host
