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


@dataclass(frozen=True, slots=True)
class CompiledEmail:
    sender: Template
    reply_to: Template | None
    subject: Template
    html: Template | None
    text: Template | None

    def render(self, context: dict[str, Any]) -> RenderedEmail:
        try:
            return RenderedEmail(
                sender=_header(self.sender.render(**context)),
                reply_to=_header(self.reply_to.render(**context)) if self.reply_to else None,
                subject=_header(self.subject.render(**context)),
                html=self.html.render(**context) if self.html else None,
                text=self.text.render(**context) if self.text else None,
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

    def optional(key: str, *, html: bool = False) -> Template | None:
        source = content.get(key)
        return compile_liquid(source, field=f"email.{key}", html=html) if source else None

    return CompiledEmail(
        sender=compile_liquid(content.get("from") or "", field="email.from"),
        reply_to=optional("replyTo"),
        subject=compile_liquid(content.get("subject") or "", field="email.subject"),
        html=optional("html", html=True),
        text=optional("text"),
    )
