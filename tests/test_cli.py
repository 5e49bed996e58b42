"""The README's first command, as a new user runs it: ``envoi serve`` on SQLite with the demo data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.processes import free_port, start_envoi, wait_for_text


def _serve(tmp_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return start_envoi(["serve", "--port", str(port)], env={}, cwd=tmp_path, output=log.open("ab"))


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("envoi serve never became healthy")


def _stop(server: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM: the worker finishes its batch and says so; uvicorn then re-raises the signal to exit."""
    stopped_before = log.read_text().count("worker.stopped")
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) in (0, -signal.SIGTERM)
    assert log.read_text().count("worker.stopped") == stopped_before + 1


def test_serve_starts_with_demo_data_and_sends_to_the_outbox(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    server = _serve(tmp_path, port, log)
    try:
        output = wait_for_text(log, "API key:")
        url = re.search(r"running at (http://\S+)", output).group(1)  # type: ignore[union-attr]
        key = re.search(r"API key: (\S+)", output).group(1)  # type: ignore[union-attr]
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / ".envoi" / "envoi.db").exists()
        _wait_healthy(url)
        headers = {"Authorization": f"Bearer {key}"}
        types = httpx.get(f"{url}/api/v1/event-types", headers=headers).json()
        assert {t["name"] for t in types} == {"order_confirmation", "password_reset", "cart_abandonment"}

        pushed = httpx.post(
            f"{url}/api/v1/events",
            headers=headers,
            json={
                "type": "password_reset",
                "email": "ada@example.com",
                "ctx": {"firstName": "Ada", "resetUrl": "https://x.test/r"},
            },
        )
        assert pushed.status_code == 202
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}{pushed.json()['href']}", headers=headers).json()["status"] != "processed":
            assert time.monotonic() < deadline, "the event was never processed"
            time.sleep(0.05)
        (mail,) = httpx.get(f"{url}/api/v1/outbox", headers=headers).json()
        assert mail["to"] == "ada@example.com" and mail["subject"] == "Reset your password"
        assert 'href="https://x.test/r"' in mail["html"]
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "Envoi"
    finally:
        _stop(server, log)

    # A second start keeps the data and the key, and does not load the demo twice.
    port = free_port()
    again = _serve(tmp_path, port, log)
    try:
        output = wait_for_text(log, f"127.0.0.1:{port}")
        assert output.count(f"API key: {key}") == 2
        _wait_healthy(f"http://127.0.0.1:{port}")
        types = httpx.get(f"http://127.0.0.1:{port}/api/v1/event-types", headers=headers).json()
        assert len(types) == 3
    finally:
        _stop(again, log)


def test_apikey_create_prints_a_working_key_last(tmp_path: Path) -> None:
    env = {"ENVOI_DATA_DIR": str(tmp_path / "data")}
    created = subprocess.run(
        [sys.executable, "-m", "envoi", "apikey", "create", "--name", "billing"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("envoi_") and len(key) > 40
    listed = subprocess.run(
        [sys.executable, "-m", "envoi", "apikey", "list"],
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "billing" in listed.stdout and key not in listed.stdout
    assert key[:12] in listed.stdout


def test_serve_refuses_a_providers_file_with_a_mistake_and_says_where(tmp_path: Path) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text('[providers.relay]\nkind = "smtp"\nrole = "default"\nhost = "relay.example.net"\n')
    env = {"ENVOI_PROVIDERS_FILE": str(providers), "ENVOI_SMTP_URL": "smtp://relay.example.net:25"}
    result = subprocess.run(
        [sys.executable, "-m", "envoi", "serve", "--port", str(free_port())],
        env={k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "providers.relay.settings.port" in said and "Field required" in said


def test_workflow_list_and_run(tmp_path: Path) -> None:
    def envoi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envoi", "workflow", *args],
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "ENVOI_DATA_DIR": str(tmp_path / "data")},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = envoi("list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"purge\s+│ started\s+│ \d{4}-\d\d-\d\d 03:30 │ workflow_supervisors", listed.stdout), (
        listed.stdout
    )
    ran = envoi("run", "purge")
    assert ran.returncode == 0 and "Run 1 of purge started: /console/workflows/" in ran.stdout, ran.stdout
    again = envoi("run", "purge")  # nothing carried the first one out yet: no scheduler runs here
    assert again.returncode == 1 and "already running" in again.stdout
    unknown = envoi("run", "nightly")
    assert unknown.returncode == 1 and "no workflow is named 'nightly'" in unknown.stdout
