"""NUL (U+0000) anywhere in a request is a 422 that names the field, on both backends: PostgreSQL cannot
store it (the fuzzer found it as a 500 in paths, queries and bodies of a dozen routes), SQLite would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from envoi.app import create_app
from envoi.runtime import Runtime


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("GET", "/api/v1/event-types/a%00b", None, "name"),
        ("PATCH", "/api/v1/groups/ops%00", {"label": "Ops"}, "name"),
        ("GET", "/api/v1/audit?limit=5&objectType=a%00b", None, "objectType"),
        ("POST", "/api/v1/event-types", {"name": "nul", "label": "a\x00b"}, "label"),
        ("POST", "/api/v1/api-keys", {"name": "k", "scopes": ["view_events", "x\x00"]}, "scopes.1"),
        ("POST", "/api/v1/events/batch", {"events": [{"type": "t", "ctx": {"n\x00": 1}}]}, "events.0.ctx"),
    ],
)
async def test_nul_is_refused_with_the_field_named(
    api: httpx.AsyncClient, method: str, url: str, body: object, field: str
) -> None:
    response = await api.request(method, url, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed" and error["field"] == field
    assert "NUL" in error["message"]
    assert "nul" not in {item["name"] for item in (await api.get("/api/v1/event-types")).json()}


async def test_text_that_only_spells_the_escape_is_stored(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/event-types", json={"name": "spelled", "label": "a\\u0000b"})
    assert created.status_code == 201, created.text
    assert (await api.get("/api/v1/event-types/spelled")).json()["label"] == "a\\u0000b"


async def test_a_json_body_over_the_size_limit_is_still_413_without_a_length(runtime: Runtime) -> None:
    """The guard reads JSON bodies whole, through the size limit, and hands the limit's refusal on."""
    settings = runtime.settings.model_copy(update={"request_max_bytes": 1000})
    app = create_app(settings, run_worker=False, runtime=runtime)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only reading finds the size
        for _ in range(10):
            yield b'{"name": "' + b"x" * 500 + b'"}'

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        response = await client.post(
            "/api/v1/event-types", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
