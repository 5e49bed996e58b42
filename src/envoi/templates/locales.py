"""Language tags and the choice of a template's variant for an event's language."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


def normalize_language(value: str) -> str:
    """``en_gb`` -> ``en-GB``, ``FR`` -> ``fr``, ``zh-hant-tw`` -> ``zh-Hant-TW``; ValueError if not a tag."""
    value = value.strip()
    if not _TAG.match(value):
        raise ValueError(f"'{value}' is not a language tag such as 'fr' or 'en-GB'")
    first, *rest = value.replace("_", "-").split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # script
        else:
            parts.append(part.lower())
    return "-".join(parts)


def pick_language(requested: str | None, available: Iterable[str], default: str) -> str:
    """The best variant for ``requested``: the same tag, then ever shorter prefixes of it (``fr-CA`` -> ``fr``),
    then any variant of the same language (``en`` -> ``en-GB``), else the template's default language."""
    if not requested:
        return default
    try:
        wanted = normalize_language(requested)
    except ValueError:
        return default
    by_lower = {tag.lower(): tag for tag in (*available, default)}
    parts = wanted.lower().split("-")
    for end in range(len(parts), 0, -1):
        hit = by_lower.get("-".join(parts[:end]))
        if hit is not None:
            return hit
    same_language = sorted(tag for lower, tag in by_lower.items() if lower.split("-")[0] == parts[0])
    return same_language[0] if same_language else default
