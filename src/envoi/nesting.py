"""How deep user data may nest: JSON objects and lists inside each other, at most MAX_NESTING levels.

The JSON parsers stop far deeper (pydantic's at about 200 levels, the standard library's near the interpreter's
recursion limit), and what they let through still breaks later: serializing past 255 levels fails, JSON Schema
checks recurse a few frames per level. So what is stored is refused beyond a depth no real data reaches.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_NESTING = 64


def nesting_depth(value: Any, stop_after: int = MAX_NESTING) -> int:
    """How many objects and lists deep ``value`` goes (0 for a string or a number), counting no further than
    one past ``stop_after``. Level by level, without recursion: any depth is measured safely, and the usual
    flat ctx in one pass (this runs for every event ingested)."""
    if not isinstance(value, dict | list):
        return 0
    depth, level = 1, [value]
    while True:
        below = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not below or depth > stop_after:
            return depth
        depth, level = depth + 1, below


def _shallow(value: Any) -> Any:
    if nesting_depth(value) > MAX_NESTING:
        raise ValueError(f"nests deeper than {MAX_NESTING} levels of objects and lists")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow)]
"""A JSON object from a request, refused (422) when it nests too deep."""
ShallowJson = Annotated[Any, AfterValidator(_shallow)]
"""Any JSON value from a request, refused (422) when it nests too deep."""
