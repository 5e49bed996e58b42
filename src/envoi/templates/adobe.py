"""Convert Adobe Campaign JST personalization (`<%= rtEvent.ctx.a.@b %>`) into Envoi Liquid."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Conversion", "jst_to_liquid"]


@dataclass(frozen=True)
class Conversion:
    liquid: str
    unconverted: list[str]  # each JST snippet left as a Liquid comment, verbatim, in order of appearance


# The attributes of Adobe's rtEvent/batchEvent that Envoi passes to templates as `event.<name>`.
EVENT_FIELDS = frozenset({"externalId", "email", "mobilePhone", "language", "origin", "type"})

_AROUND_PUNCTUATION = re.compile(r"\s*([.\[\]])\s*")
_PATH = re.compile(r"(?:rtEvent|batchEvent)((?:\.@?[^\W\d][\w-]*|\[\d+\])+)")
_SEGMENT = re.compile(r"\.(@?[^\W\d][\w-]*)|\[(\d+)\]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words python-liquid reads as keywords after a dot: such a key must be written `["word"]`.
_LIQUID_KEYWORDS = frozenset(
    [
        "true",
        "false",
        "nil",
        "null",
        "empty",
        "blank",
        "and",
        "or",
        "not",
        "contains",
        "in",
        "offset",
        "limit",
        "reversed",
        "cols",
        "continue",
        "with",
        "for",
        "as",
        "if",
        "else",
        "required",
    ]
)
# Each JST wrapper and the Liquid filter it becomes; Envoi auto-escapes HTML, so escapeXMLString needs none.
_WRAPPERS = [
    (re.compile(r"escapeXMLString\s*\((?P<inner>.*)\)", re.DOTALL), ""),
    (re.compile(r"encodeURIComponent\s*\((?P<inner>.*)\)", re.DOTALL), " | url_encode"),
    (re.compile(r"String\s*\((?P<inner>.*)\)", re.DOTALL), ""),
    (re.compile(r"(?P<inner>.*)\.\s*toUpperCase\s*\(\s*\)", re.DOTALL), " | upcase"),
    (re.compile(r"(?P<inner>.*)\.\s*toLowerCase\s*\(\s*\)", re.DOTALL), " | downcase"),
    (re.compile(r"(?P<inner>.*)\.\s*toString\s*\(\s*\)", re.DOTALL), ""),
    (re.compile(r"\((?P<inner>.*)\)", re.DOTALL), ""),
]
# A template is user content: bound the work one expression may cost ("((((...", long runs of spaces).
_MAX_WRAPPERS = 5
_MAX_EXPRESSION = 500
# Inside raw text only an `endraw` tag ends the block; inside a comment any tag or output could (not "{%>").
_ENDRAW_OPENER = re.compile(r"\{%(?=-?\s*endraw)")
_LIQUID_OPENER = re.compile(r"\{(?=\{|%-?\s*[\w#])")
_NEEDS_RAW = re.compile(r"\{[{%]|\{$")


def jst_to_liquid(source: str) -> Conversion:
    """Convert JST output expressions to Liquid; leave everything else visible as a Liquid comment."""
    parts: list[str] = []
    unconverted: list[str] = []
    position = 0
    # str.find rather than a regex: many "<%" with no "%>" must not cost quadratic time.
    while (start := source.find("<%", position)) != -1 and (end := source.find("%>", start + 2)) != -1:
        parts.append(_literal(source[position:start]))
        snippet, position = source[start : end + 2], end + 2
        output = _expression(snippet[3:-2]) if snippet.startswith("<%=") else None
        if output is None:
            unconverted.append(snippet)
            parts.append(_comment(snippet))
        else:
            parts.append(f"{{{{ {output} }}}}")
    parts.append(_literal(source[position:]))
    return Conversion(liquid="".join(parts), unconverted=unconverted)


def _literal(text: str) -> str:
    # A trailing "{" would fuse with the next tag's "{{" or "{%", so it is protected too.
    if not _NEEDS_RAW.search(text):
        return text
    return "{% raw %}" + _ENDRAW_OPENER.sub("{%{% endraw %}{% raw %}", text) + "{% endraw %}"


def _comment(snippet: str) -> str:
    # A comment's body is still tokenized: a "{{" or "{%if" in it could swallow the endcomment, so space them out.
    return "{% comment %}unconverted JST: " + _LIQUID_OPENER.sub("{ ", snippet) + "{% endcomment %}"


def _expression(code: str, depth: int = 0) -> str | None:
    code = code.strip()
    if depth > _MAX_WRAPPERS or len(code) > _MAX_EXPRESSION:
        return None
    for pattern, liquid_filter in _WRAPPERS:
        # The first wrapper matching may be the wrong split: "f(a).g()" is no call of f on "a).g(".
        if (match := pattern.fullmatch(code)) and (inner := _expression(match.group("inner"), depth + 1)):
            return inner + liquid_filter
    return _variable(code)


def _variable(code: str) -> str | None:
    path = _PATH.fullmatch(_AROUND_PUNCTUATION.sub(r"\1", code))
    if path is None:
        return None
    segments: list[tuple[str, str]] = _SEGMENT.findall(path.group(1))
    root, rest = segments[0][0], segments[1:]
    if root == "ctx" and rest:
        return "ctx" + "".join(_subscript(name, index) for name, index in rest)
    if not rest and root.lstrip("@") in EVENT_FIELDS:
        return f"event.{root.lstrip('@')}"
    return None


def _subscript(name: str, index: str) -> str:
    if index:
        return f"[{index}]"
    if _IDENTIFIER.fullmatch(name) and name not in _LIQUID_KEYWORDS:
        return f".{name}"
    return f'["{name}"]'
