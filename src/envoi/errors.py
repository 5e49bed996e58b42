"""Every error a caller can see. The API renders them as ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from typing import Any


class EnvoiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body


class ValidationFailed(EnvoiError):
    status_code = 422
    code = "validation_failed"


class BatchRejected(EnvoiError):
    """A batch with at least one invalid item; ``details["items"]`` lists each bad item by index."""

    status_code = 422
    code = "batch_rejected"


class NotFound(EnvoiError):
    status_code = 404
    code = "not_found"


class Conflict(EnvoiError):
    status_code = 409
    code = "conflict"


class Unauthorized(EnvoiError):
    status_code = 401
    code = "unauthorized"


class TemplateSyntaxError(ValidationFailed):
    code = "template_syntax_error"


class StoreUnavailable(EnvoiError):
    """The database could not store the request: nothing was accepted, try again."""

    status_code = 503
    code = "store_unavailable"
