"""Paths in providers created through the API: whoever may manage providers must not make the server read a file
of their choosing (a private key, a password file) as a CA bundle or a DKIM key folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import make_client

SMTP = {"url": "smtps://relay.example.net:465"}


@pytest.fixture
async def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "provider-files"
    folder.mkdir()
    (folder / "ca.pem").write_text("a CA bundle")
    (tmp_path / "secret.pem").write_text("not for the API")
    (folder / "link.pem").symlink_to(tmp_path / "secret.pem")  # inside by its name, outside by its target
    return folder


@pytest.fixture
async def api_with_files(settings: Settings, allowed: Path) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime.create(settings.model_copy(update={"provider_files_dir": allowed}))
    async with await make_client(runtime) as client:
        yield client
    await runtime.aclose()


async def _add(api: httpx.AsyncClient, settings: dict[str, Any]) -> httpx.Response:
    return await api.post("/api/v1/providers", json={"name": "relay", "kind": "smtp", "settings": SMTP | settings})


async def test_without_a_files_folder_the_api_names_no_file(api: httpx.AsyncClient, tmp_path: Path) -> None:
    for field in ("ca_file", "dkim_key_dir"):
        refused = await _add(api, {field: "/etc/passwd" if field == "ca_file" else str(tmp_path)})
        assert refused.status_code == 422, refused.text
        [problem] = refused.json()["error"]["errors"]
        assert problem["field"] == f"settings.{field}" and "ENVOI_PROVIDER_FILES_DIR" in problem["message"]
    assert (await api.get("/api/v1/providers")).json() == []  # nothing was stored
    assert (await _add(api, {})).status_code == 201  # a provider without files is as before


async def test_only_files_inside_the_folder_once_it_is_set(
    api_with_files: httpx.AsyncClient, allowed: Path, tmp_path: Path
) -> None:
    api = api_with_files
    for outside in (tmp_path / "secret.pem", allowed / ".." / "secret.pem", allowed / "link.pem"):
        refused = await _add(api, {"ca_file": str(outside)})
        assert refused.status_code == 422, (outside, refused.text)
        assert refused.json()["error"]["errors"][0]["field"] == "settings.ca_file"
    assert (await api.get("/api/v1/providers")).json() == []

    created = await _add(api, {"ca_file": str(allowed / "ca.pem")})
    assert created.status_code == 201, created.text
    moved = await api.patch("/api/v1/providers/relay", json={"settings": {"dkim_key_dir": "/root"}})
    assert moved.status_code == 422, moved.text
    assert moved.json()["error"]["errors"][0]["field"] == "settings.dkim_key_dir"
    [stored] = (await api.get("/api/v1/providers")).json()
    assert stored["settings"]["dkim_key_dir"] is None  # the refused change changed nothing
