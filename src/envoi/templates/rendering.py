"""Liquid rendering: HTML auto-escaped, subjects and text not, resource limits set explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate as Template
from liquid import Environment
from liquid.exceptions import LiquidError

from envoi.errors import TemplateSyntaxError


class _LimitedEnvironment(Environment):
    # A template is user content: bound what one render may cost.
    loop_iteration_limit = 10_000
    output_stream_limit = 2_000_000
    context_depth_limit = 30
    local_namespace_limit = 200_000
    block_nesting_limit = 30


HTML_ENV = _LimitedEnvironment(autoescape=True)
PLAIN_ENV = _LimitedEnvironment(autoescape=False)


class RenderError(Exception):
    """A template failed while rendering one event (a limit hit, a bad filter argument)."""


def _line_of(source: str, error: LiquidError) -> int:
    index = getattr(error.token, "start_index", -1) if error.token is not None else -1
    if index is None or index < 0:
        return source.count("\n") + 1
    return source.count("\n", 0, index) + 1


def compile_liquid(source: str, *, field: str, html: bool = False) -> Template:
    try:
        return (HTML_ENV if html else PLAIN_ENV).from_string(source)
    except LiquidError as error:
        line = _line_of(source, error)
        raise TemplateSyntaxError(
            f"{field}, line {line}: {error.message}", field=field, details={"line": line}
        ) from error


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    sender: str
    reply_to: str | None
    subject: str
    html: str | None
    text: str | None


Part = Template | str  # a str is literal text with no Liquid in it: nothing to render


def _render(part: Part, context: dict[str, Any]) -> str:
    return part if isinstance(part, str) else part.render(**context)


@dataclass(frozen=True, slots=True)
class CompiledEmail:
    sender: Part
    reply_to: Part | None
    subject: Part
    html: Part | None
    text: Part | None

    def render(self, context: dict[str, Any]) -> RenderedEmail:
        try:
            return RenderedEmail(
                sender=_header(_render(self.sender, context)),
                reply_to=_header(_render(self.reply_to, context)) if self.reply_to is not None else None,
                subject=_header(_render(self.subject, context)),
                html=_render(self.html, context) if self.html is not None else None,
                text=_render(self.text, context) if self.text is not None else None,
            )
        except LiquidError as error:
            raise RenderError(error.message or str(error)) from error
        except Exception as error:  # filters raise plain errors too (floor of infinity, say)
            raise RenderError(f"{type(error).__name__}: {error}") from error


def _header(value: str) -> str:
    # A header is one line: a newline in the data must never inject another header.
    return " ".join(value.split())


def compile_email(content: dict[str, Any]) -> CompiledEmail:
    """Compile the email content of a template (the API's shape); raises TemplateSyntaxError naming the field."""

    def part(key: str, *, html: bool = False) -> Part:
        source = content.get(key) or ""
        template = compile_liquid(source, field=f"email.{key}", html=html)  # checks the syntax either way
        return source if "{" not in source else template

    def optional(key: str, *, html: bool = False) -> Part | None:
        return part(key, html=html) if content.get(key) else None

    return CompiledEmail(
        sender=part("from"),
        reply_to=optional("replyTo"),
        subject=part("subject"),
        html=optional("html", html=True),
        text=optional("text"),
    )
