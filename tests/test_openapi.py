"""The OpenAPI document that /docs shows is complete: every reference resolves, every API route needs a key."""

from __future__ import annotations

from typing import Any

from envoi.app import create_app
from envoi.settings import Settings


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_openapi_references_resolve_and_api_routes_declare_bearer_auth() -> None:
    spec = create_app(Settings()).openapi()
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    batch = spec["paths"]["/api/v1/events/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["events"]["items"]["$ref"] == "#/components/schemas/EventIn"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/v1"):
                assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"
