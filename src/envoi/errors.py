"""Every error a caller can see. The API renders them as ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Problem = tuple[str, str]  # (field, message)
_LOCATIONS = ("body", "query", "path", "header")  # FastAPI's first loc element: where, not which field


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


def input_problems(errors: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Pydantic's (and FastAPI's) errors as (field, message), with field paths in the API's own names."""
    problems = []
    for item in errors:
        if item.get("type") == "json_invalid":
            problems.append(("body", f"the body is not valid JSON ({item.get('msg')})"))
            continue
        loc = [str(part) for part in item.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:
            loc = loc[1:]
        problems.append((".".join(loc) or "body", str(item.get("msg", "invalid"))))
    return problems


def as_dicts(problems: Iterable[Problem]) -> list[dict[str, str]]:
    return [{"field": field, "message": message} for field, message in problems]


def invalid(problems: list[Problem], *, prefix: bool = False) -> ValidationFailed:
    """The error for a list of problems: the first names the field, all are listed under ``errors``.
    With ``prefix``, the message starts with the field (for errors where the field is not obvious)."""
    field, message = problems[0] if problems else ("body", "invalid request")
    text = f"{field}: {message}" if prefix else message
    return ValidationFailed(text, field=field, details={"errors": as_dicts(problems)})


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


class Forbidden(EnvoiError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(EnvoiError):
    status_code = 429
    code = "too_many_requests"


class TemplateSyntaxError(ValidationFailed):
    code = "template_syntax_error"


class RetryLater(EnvoiError):
    """Nothing was done, and the same request will succeed later: answered with ``Retry-After`` (seconds)."""

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None):
        super().__init__(message, details={"retryAfter": retry_after} | (details or {}))
        self.retry_after = retry_after


class StoreUnavailable(RetryLater):
    """The database cannot take requests now (down, restarting, unreachable, full, locked): nothing was stored."""

    status_code = 503
    code = "store_unavailable"


class QueueFull(RetryLater):
    """Ingestion is paused while the queue holds more events than the workers can catch up with."""

    status_code = 429
    code = "queue_full"


class RateLimited(RetryLater):
    """This API key pushed more events than its rate allows; the others are not affected."""

    status_code = 429
    code = "rate_limited"


class StreamUnavailable(EnvoiError):
    """This process does not run live notifications (its application was not started), so it cannot stream."""

    status_code = 503
    code = "stream_unavailable"


class PublishRefused(ValidationFailed):
    """The draft fails the checks at publish; ``details["errors"]`` lists every problem."""

    code = "publish_refused"


class RenderFailed(ValidationFailed):
    """A template failed to render with the data given (preview); ``line`` and ``expression`` say where."""

    code = "render_failed"
