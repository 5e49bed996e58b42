"""Reading posted forms, and turning validation errors into messages shown next to their fields."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData

from envoi.errors import EnvoiError

FieldErrors = dict[str, str]  # form field -> message; "" for a message about the whole form


class Form:
    def __init__(self, data: FormData) -> None:
        self._data = data

    def text(self, name: str) -> str:
        value = self._data.get(name)
        return value.strip() if isinstance(value, str) else ""

    def raw(self, name: str) -> str:
        """As typed (templates keep their whitespace), with the browser's CRLF line ends made LF."""
        value = self._data.get(name)
        return value.replace("\r\n", "\n") if isinstance(value, str) else ""

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def checked(self, name: str) -> list[str]:
        return [value for value in self._data.getlist(name) if isinstance(value, str)]

    def values(self) -> dict[str, str]:
        """Every single-valued field as typed, to fill the form again when it is shown with errors."""
        return {key: value for key, value in self._data.items() if isinstance(value, str) and key != "csrf_token"}


async def read_form(request: Request) -> Form:
    """The console's forms hold fields, never files: an upload is refused before it is written anywhere."""
    return Form(await request.form(max_files=0, max_fields=200))


def json_field(form: Form, name: str, errors: FieldErrors, *, kind: type = dict) -> Any:
    """A textarea holding JSON (empty: None); a syntax error or the wrong kind is put in ``errors``."""
    source = form.text(name)
    if not source:
        return None
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        errors[name] = f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        return None
    if not isinstance(value, kind):
        errors[name] = "Write a JSON object: {…}." if kind is dict else f"Write a JSON {kind.__name__}."
        return None
    return value


def _field(path: str, fields: Iterable[str], aliases: dict[str, str]) -> str:
    """The form field a path of the API's names belongs to: itself, an alias, or its closest parent."""
    known = set(fields)
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        candidate = aliases.get(candidate, candidate)
        if candidate in known:
            return candidate
    return ""


def pydantic_errors(
    error: ValidationError, fields: Iterable[str], aliases: dict[str, str] | None = None
) -> FieldErrors:
    found: FieldErrors = {}
    fields = list(fields)
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        name = _field(path, fields, aliases or {})
        message = problem["msg"].removeprefix("Value error, ")
        found.setdefault(name, message if name else f"{path}: {message}")
    return found


def service_errors(error: EnvoiError, fields: Iterable[str], aliases: dict[str, str] | None = None) -> FieldErrors:
    name = _field(error.field or "", fields, aliases or {})
    found: FieldErrors = {name: error.message}
    for problem in error.details.get("errors", []):
        other = _field(str(problem.get("field", "")), fields, aliases or {})
        found.setdefault(other, str(problem.get("message", "")))
    return found
