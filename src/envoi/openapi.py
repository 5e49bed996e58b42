"""The error half of the OpenAPI document, written once for every route: the body of every error (what
``app.py`` renders from an ``EnvoiError``) and the statuses each kind of route can answer with.

A route declares its success and its own errors (a 409 on a reused Idempotency-Key, a 429 on ingestion); what
every route of a kind can answer (401 without a key, 404 for an unknown id, 422 for a bad field) is added here,
so the document says what the API does and a client generated from it can read every error."""

from __future__ import annotations

from typing import Any

ERROR_REF = "#/components/schemas/Error"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable and machine-readable: not_found, conflict…"},
                "message": {"type": "string", "description": "For people; may change between versions"},
                "field": {"type": "string", "description": "The field at fault, in the API's names (a.b.0.c)"},
                "errors": {
                    "type": "array",
                    "description": "Every invalid field, when there are several",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
                "retryAfter": {"type": "integer", "description": "Seconds to wait (also the Retry-After header)"},
            },
        }
    },
}

_WRITES = {"post", "put", "patch", "delete"}
# FastAPI documents its own validation error shape, which the API never sends (app.py renders Error instead).
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _statuses(path: str, method: str, operation: dict[str, Any]) -> dict[str, str]:
    """The errors any route like this one can answer with, by status."""
    statuses = {"503": "The database cannot take requests now (store_unavailable): retry after Retry-After"}
    if operation.get("security"):
        statuses["401"] = "No API key, or an unknown or revoked one (unauthorized)"
        statuses["403"] = "The key lacks the permission this needs (forbidden)"
    if "{" in path or "requestBody" in operation:
        statuses["404"] = "Nothing has the id or name given in the path or the body (not_found)"
    if "requestBody" in operation:
        statuses["400"] = "The body could not be read as its content type says (bad_request)"
        statuses["413"] = "The body is larger than ENVOI_REQUEST_MAX_BYTES (payload_too_large)"
    if operation.get("parameters") or "requestBody" in operation:
        statuses["422"] = "A field is invalid: error.field names it, error.errors lists every one"
    if method in _WRITES:
        statuses["409"] = "The change conflicts with what exists: a name taken, a built-in, a state (conflict)"
    return statuses


def document_errors(document: dict[str, Any]) -> None:
    """Adds the shared error responses to every operation of ``document`` (in place), keeping what a route
    declared itself, and gives every error response the Error body."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    error_content = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in _statuses(path, method, operation).items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45" and _documents_no_error_body(response):
                    response["content"] = error_content
            operation["responses"] = dict(sorted(responses.items()))  # /docs lists them in this order


def _documents_no_error_body(response: dict[str, Any]) -> bool:
    """No body documented, or FastAPI's validation error (which app.py never sends)."""
    content = response.get("content")
    if not content:
        return True
    schema = content.get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).rpartition("/")[2] in _FASTAPI_SCHEMAS
