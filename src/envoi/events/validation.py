"""Checks shared by ingestion and event types: values every database stores faithfully, and ctx against an
event type's JSON Schema."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from envoi.db.base import SerializedJson

SCHEMA_UNUSABLE = "the event type's schema cannot be applied"
# NUL as json.dumps writes it (PostgreSQL's jsonb refuses it): \u0000 after an even number of backslashes.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def ctx_errors(schema_json: str, ctx: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    try:
        found = sorted(_validator(schema_json).iter_errors(ctx), key=lambda e: [str(p) for p in e.absolute_path])
    except Exception as failure:  # an unresolvable $ref, say: the schema's fault, reported, never a 500
        return [("ctx", f"{SCHEMA_UNUSABLE}: {type(failure).__name__}: {failure}")]
    for error in found:
        path = ["ctx", *(str(p) for p in error.absolute_path)]
        if error.validator == "required" and isinstance(error.instance, dict):
            # Name the missing field itself, not its parent object.
            missing = [name for name in error.validator_value if name not in error.instance]
            path += missing[:1]
        problems.append((".".join(path), error.message))
    return problems


def clean_json(value: Any) -> SerializedJson | None:
    """The value as JSON text in one pass in C, or None if any database would refuse or alter it (the walk in
    text_problem then finds where)."""
    try:
        dumped = json.dumps(value, allow_nan=False, ensure_ascii=False)
        dumped.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return None
    if "\\u0000" in dumped and _NUL_ESCAPE.search(dumped):  # not a text that merely shows a backslash and u0000
        return None
    return SerializedJson(dumped)


def text_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first value no database can store faithfully: NUL, a lone surrogate, NaN or infinity."""
    if isinstance(value, dict | list) and clean_json(value) is not None:
        return None
    if isinstance(value, str):
        if "\x00" in value:
            return path, "text must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "text must be valid Unicode (a lone surrogate was found)"
    elif isinstance(value, float) and not math.isfinite(value):
        return path, "numbers must be finite (NaN and Infinity are not JSON)"
    elif isinstance(value, dict):
        for key, item in value.items():
            if problem := text_problem(key, path) or text_problem(item, f"{path}.{key}"):
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if problem := text_problem(item, f"{path}.{index}"):
                return problem
    return None
