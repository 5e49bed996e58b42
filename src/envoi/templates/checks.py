"""What publishing checks: a broken template must never go live.

Every variable a template reads must exist in the event type's JSON Schema (when it has one); the template must
render against the event type's sample and every seed address, in every language; the subject (an SMS's text, a
push's body) must not render empty; a push's badge must render to a number; the HTML must parse; links must be
absolute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from liquid import BoundTemplate
from liquid.exceptions import LiquidError, TemplateNotFoundError
from lxml import etree
from lxml import html as lxml_html

from envoi.errors import Problem, TemplateSyntaxError
from envoi.templates.compiled import CompiledTemplate
from envoi.templates.design import EVENT_VARIABLES, PROFILE_VARIABLES, Design, render_context
from envoi.templates.email import RenderedEmail
from envoi.templates.push import RenderedPush
from envoi.templates.rendering import RenderError
from envoi.templates.sms import RenderedSms

_ARRAY_PROPERTIES = frozenset({"first", "last", "size"})
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel", "sms"})
_STRICT_HTML = etree.HTMLParser(recover=False, no_network=True)


@dataclass(frozen=True, slots=True)
class Sample:
    """Event data to render with: the event type's sample, or a seed address's."""

    label: str
    ctx: Mapping[str, Any]
    language: str | None = None
    email: str | None = None
    external_id: str | None = None


def publish_problems(
    design: Design, schema: Mapping[str, Any] | None, samples: Sequence[Sample]
) -> tuple[list[Problem], CompiledTemplate | None]:
    """Everything that stops this design from being published (empty: it may go live), and its compiled form."""
    try:
        compiled = CompiledTemplate(design)
    except TemplateSyntaxError as error:
        return [(error.field or "email", error.message)], None
    problems: list[Problem] = []
    if design.channel == "email" and not any(design.content.get(k) for k in ("html", "mjml", "text")):
        problems.append(("email.html", "an email needs an HTML, MJML or text body"))
    problems += layout_problems(design)
    problems += variable_problems(compiled, schema)
    found: dict[Problem, list[str]] = {}  # the same problem with several seeds is listed once, naming them all
    for sample in samples or [Sample("no data", {})]:
        # Its own language, then every other variant: a seed in one language stands for events in all of them.
        tried: set[str] = set()
        for language in (sample.language, design.language, *design.variants):
            chosen = compiled.pick(language)
            if chosen in tried:
                continue
            tried.add(chosen)
            against = f"{sample.label}" + (f", in '{chosen}'" if design.variants else "")
            for problem in _render_problems(compiled, sample, language):
                found.setdefault(problem, []).append(against)
    problems += [(field, f"{message} (with {'; '.join(against)})") for (field, message), against in found.items()]
    return list(dict.fromkeys(problems)), compiled


def layout_problems(design: Design) -> list[Problem]:
    """A layout must have a part for each kind of body the template has (an MJML body needs an MJML layout)."""
    if design.layout is None:
        return []
    problems = []
    for language in (design.language, *design.variants):
        email = design.content_in(language)
        for kind in ("html", "mjml"):
            if email.get(kind) and not design.layout.get(kind):
                name = design.layout["name"]
                problems.append(("layout", f"layout '{name}' has no {kind} part for the {kind} body"))
    return list(dict.fromkeys(problems))


def _render_problems(compiled: CompiledTemplate, sample: Sample, language: str | None) -> list[Problem]:
    context = render_context(sample.ctx, email=sample.email, external_id=sample.external_id, language=language)
    try:
        rendered = compiled.render(context, language)
    except RenderError as error:
        return [(error.field, f"fails to render: {error}")]
    where = compiled.design.field_of
    if isinstance(rendered, RenderedSms):
        return [(where(rendered.language, "text"), "the text is empty")] if not rendered.text else []
    if isinstance(rendered, RenderedPush):
        return [(where(rendered.language, "body"), "the body is empty")] if not rendered.body else []
    problems = []
    if not rendered.subject:
        problems.append((where(rendered.language, "subject"), "the subject is empty"))
    body = "mjml" if compiled.design.content_in(rendered.language).get("mjml") else "html"
    problems += [(where(rendered.language, body), message) for message in html_problems(rendered)]
    return problems


def html_problems(rendered: RenderedEmail) -> list[str]:
    if not rendered.html or not rendered.html.strip():
        return []  # nothing to show (a body inside an {% if %} that was false): not a parse error
    problems = []
    source = rendered.html.encode()  # bytes: an <?xml ... encoding?> declaration is allowed
    try:
        etree.fromstring(source, _STRICT_HTML)
    except etree.XMLSyntaxError as error:
        problems.append(f"the HTML does not parse: {error.msg}")
    try:
        document = lxml_html.document_fromstring(source)
    except (etree.ParserError, ValueError):
        return problems
    hrefs = document.xpath("//a/@href | //area/@href")
    for href in hrefs if isinstance(hrefs, list) else ():
        link = str(href).strip()
        if link.startswith("#"):
            continue
        scheme = urlsplit(link).scheme.lower()
        if scheme not in _LINK_SCHEMES or (scheme in ("http", "https") and not urlsplit(link).netloc):
            problems.append(f"the link '{link[:200]}' is not an absolute URL")
    return problems


def variable_problems(compiled: CompiledTemplate, schema: Mapping[str, Any] | None) -> list[Problem]:
    """Variables read by the template that no event can have: unknown names, or ``ctx`` paths not in the schema."""
    problems = []
    for field, template, in_layout in _liquid_parts(compiled):
        try:
            analysis = template.analyze(include_partials=True)
        except TemplateNotFoundError as error:
            problems.append((field, f"snippet '{error.message}' does not exist"))
            continue
        except LiquidError as error:  # a snippet that does not compile
            problems.append((field, f"a snippet it renders is broken: {error.message}"))
            continue
        for name, variables in analysis.globals.items():
            for variable in variables:
                segments = list(variable.segments)
                where = f"snippets.{variable.span.template_name}" if variable.span.template_name else field
                path = str(variable)
                if name == "ctx":
                    if schema is not None and not schema_has(schema, segments[1:], schema):
                        problems.append((where, f"'{path}' is not in the event type's schema"))
                elif name == "event":
                    if len(segments) > 1 and segments[1] not in EVENT_VARIABLES:
                        known = ", ".join(sorted(EVENT_VARIABLES))
                        problems.append((where, f"'{path}' does not exist; event has {known}"))
                elif name == "profile":
                    if len(segments) > 1 and segments[1] not in PROFILE_VARIABLES:
                        known = ", ".join(sorted(PROFILE_VARIABLES))
                        problems.append((where, f"'{path}' does not exist; profile has {known}"))
                elif not (name == "content" and in_layout):
                    problems.append((where, f"'{path}' does not exist; event data is under ctx (ctx.{path})"))
    return problems


def _liquid_parts(compiled: CompiledTemplate) -> Iterator[tuple[str, BoundTemplate, bool]]:
    seen: set[int] = set()
    for field, part, in_layout in compiled.parts():
        if isinstance(part, BoundTemplate) and id(part) not in seen:
            seen.add(id(part))
            yield field, part, in_layout


def schema_has(
    node: Any, path: Sequence[Any], root: Mapping[str, Any], _seen: frozenset[tuple[str, int]] = frozenset()
) -> bool:
    """Whether a value at ``path`` (keys and indexes under ctx) can exist in data valid against the schema."""
    if not isinstance(node, Mapping) or not path:
        return True
    if isinstance(node.get("$ref"), str):
        ref = (node["$ref"], len(path))
        if ref in _seen:
            return True  # a $ref that leads back to itself says nothing more
        return schema_has(_resolve(node["$ref"], root), path, root, _seen | {ref})
    branches = [b for key in ("allOf", "anyOf", "oneOf") for b in node.get(key) or ()]
    if branches and any(schema_has(branch, path, root, _seen) for branch in branches):
        return True
    segment, rest = path[0], path[1:]
    if not isinstance(segment, str | int):
        return True  # a computed key (ctx.items[i]): cannot be known before rendering
    types = node.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if "array" in types or "items" in node:
        if isinstance(segment, int) or segment in ("first", "last"):
            return schema_has(node.get("items", {}), rest, root, _seen)
        if segment == "size":
            return not rest
    if segment == "size" and not rest and types & {"string", "object"}:
        return True
    properties = node.get("properties")
    if isinstance(properties, Mapping) and segment in properties:
        return schema_has(properties[segment], rest, root, _seen)
    for pattern, subschema in (node.get("patternProperties") or {}).items():
        if isinstance(segment, str) and re.search(pattern, segment):
            return schema_has(subschema, rest, root, _seen)
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        return schema_has(additional, rest, root, _seen)
    if properties is not None or additional is False or branches or node.get("patternProperties"):
        return False
    # No properties declared: a free-form object, unless the schema says it is a scalar.
    return not (types and not types & {"object", "array"})


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    if not ref.startswith("#"):
        return {}  # a remote schema: not fetched, anything goes
    node: Any = root
    for part in ref.lstrip("#/").split("/") if ref != "#" else ():
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, Mapping) else {}
    return node
