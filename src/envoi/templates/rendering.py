"""Liquid: HTML auto-escaped, subjects and text not, resource limits set explicitly, snippets by name, and
errors that say where (field, line, the expression that failed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from liquid import BoundTemplate as Template
from liquid import CachingDictLoader, Environment
from liquid.exceptions import LiquidError, TemplateNotFoundError
from liquid.loader import TemplateSource

from envoi.errors import TemplateSyntaxError
from envoi.templates.limits import BudgetedTemplate


class _LimitedEnvironment(Environment):
    # A template is user content: bound what one render may cost.
    loop_iteration_limit = 10_000
    output_stream_limit = 2_000_000
    context_depth_limit = 30
    local_namespace_limit = 200_000
    block_nesting_limit = 30
    template_class = BudgetedTemplate  # and a budget for the work of one render: see envoi.templates.limits


class RenderError(Exception):
    """A template failed while rendering one event (a limit hit, a bad filter argument, a missing snippet)."""

    def __init__(self, message: str, *, field: str, line: int | None = None, expression: str | None = None):
        where = f"{field}, line {line}" if line else field
        super().__init__(f"{where}: {message}" + (f" in {expression}" if expression else ""))
        self.message = message
        self.field = field
        self.line = line
        self.expression = expression

    def details(self) -> dict[str, Any]:
        return {"line": self.line, "expression": self.expression}


class _SnippetLoader(CachingDictLoader):
    """Snippets by name, parsed once, remembering which ones a template used (a version freezes exactly those)."""

    def __init__(self, snippets: Mapping[str, str], used: set[str]):
        super().__init__(dict(snippets), auto_reload=False)
        self.used = used

    def get_source(
        self, env: Environment, template_name: str, *, context: Any = None, **kwargs: object
    ) -> TemplateSource:
        source = super().get_source(env, template_name, context=context, **kwargs)
        self.used.add(template_name)
        return source


class Liquid:
    """The two environments a template compiles in (HTML escapes output, plain text does not), sharing snippets."""

    def __init__(self, snippets: Mapping[str, str] | None = None):
        self.snippets = dict(snippets or {})
        self.used_snippets: set[str] = set()
        # One loader each: a snippet parsed for HTML escapes its output, the same snippet in a text part must not.
        self._html = _LimitedEnvironment(autoescape=True, loader=_SnippetLoader(self.snippets, self.used_snippets))
        self._plain = _LimitedEnvironment(autoescape=False, loader=_SnippetLoader(self.snippets, self.used_snippets))

    def compile(self, source: str, *, field: str, html: bool = False) -> Template:
        try:
            return (self._html if html else self._plain).from_string(source)
        except LiquidError as error:
            line, expression = locate(source, error)
            raise TemplateSyntaxError(
                f"{field}, line {line}: {error.message}",
                field=field,
                details={"line": line, "expression": expression},
            ) from error

    def render(self, template: Template | str, context: Mapping[str, Any], *, field: str) -> str:
        """A str is literal text with no Liquid in it: nothing to render."""
        if isinstance(template, str):
            return template
        try:
            return template.render(**context)
        except LiquidError as error:
            source = error.token.source if error.token is not None else ""
            snippet = next((name for name, text in self.snippets.items() if text == source and source), None)
            line, expression = locate(source, error)
            found = isinstance(error, TemplateNotFoundError)
            raise RenderError(
                f"snippet '{error.message}' does not exist" if found else str(error.message or error),
                field=f"snippets.{snippet}" if snippet else field,
                line=line if source else None,
                expression=expression,
            ) from error
        except Exception as error:  # filters raise plain errors too (floor of infinity, say)
            raise RenderError(f"{type(error).__name__}: {error}", field=field) from error


def locate(source: str, error: LiquidError) -> tuple[int, str | None]:
    """The line of the error and the ``{{ ... }}`` or ``{% ... %}`` around it."""
    index = error.token.start_index if error.token is not None else -1
    if index is None or index < 0 or not source:
        return source.count("\n") + 1, None
    line = source.count("\n", 0, index) + 1
    start = max(source.rfind("{{", 0, index + 1), source.rfind("{%", 0, index + 1))
    if start < 0:
        return line, None
    closer = "}}" if source.startswith("{{", start) else "%}"
    end = source.find(closer, index)
    return line, (source[start : end + 2] if end >= 0 else source[start : start + 80])
