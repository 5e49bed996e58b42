"""What one render may spend, over the template and every snippet it renders.

python-liquid's own limits bound one loop nest, the output and the local variables, not the work done: a
template can still loop in sequence millions of times, render a snippet that renders two others that each
render two more, or grow a string a thousandfold per filter (``| replace: "x", "xxxxxxxxxx"`` ten times over)
before any of those limits looks at it. Each render here gets one budget: loop iterations, scopes entered
(snippets, includes, loops), characters through filters, and a wall-clock backstop. A template that passes
them all renders in well under a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from liquid import BoundTemplate, RenderContext
from liquid.exceptions import ResourceLimitError
from liquid.token import Token

RENDER_ITERATIONS = 200_000  # loop iterations in all, nested or in sequence
RENDER_SCOPES = 50_000  # snippets rendered or included, and loops started
FILTER_CHARACTERS = 50_000_000  # characters of text read and written by filters
RENDER_SECONDS = 10.0  # the backstop, for work the counts above do not see


class RenderBudgetError(ResourceLimitError):
    """A render spent its budget: the template does too much work for one message."""


class RenderBudget:
    __slots__ = ("characters", "deadline", "iterations", "max_string", "scopes")

    def __init__(self, max_string: int) -> None:
        self.iterations = RENDER_ITERATIONS
        self.scopes = RENDER_SCOPES
        self.characters = FILTER_CHARACTERS
        self.deadline = time.monotonic() + RENDER_SECONDS
        self.max_string = max_string

    def spend_iterations(self, count: int) -> None:
        self.iterations -= count
        if self.iterations < 0:
            raise RenderBudgetError(f"more than {RENDER_ITERATIONS} loop iterations in one render", token=None)
        self._check_time()

    def spend_scope(self) -> None:
        self.scopes -= 1
        if self.scopes < 0:
            raise RenderBudgetError(f"more than {RENDER_SCOPES} snippets and loops in one render", token=None)
        self._check_time()

    def spend_characters(self, count: int) -> None:
        self.characters -= count
        if self.characters < 0:
            raise RenderBudgetError(f"filters handled more than {FILTER_CHARACTERS} characters", token=None)
        self._check_time()

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetError(f"rendering took more than {RENDER_SECONDS:g} seconds", token=None)


class BudgetedContext(RenderContext):
    """A render context sharing one budget with the contexts copied from it (the snippets it renders)."""

    budget: RenderBudget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parent = self.parent_context
        limit = self.env.output_stream_limit or FILTER_CHARACTERS
        self.budget = parent.budget if isinstance(parent, BudgetedContext) else RenderBudget(limit)

    def raise_for_loop_limit(self, length: int = 1) -> None:
        super().raise_for_loop_limit(length)
        self.budget.spend_iterations(length)

    def extend(self, namespace: Any, template: BoundTemplate | None = None) -> Any:
        self.budget.spend_scope()
        return super().extend(namespace, template)

    def copy(self, *args: Any, **kwargs: Any) -> RenderContext:
        self.budget.spend_scope()
        return super().copy(*args, **kwargs)

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        return partial(_guarded_filter, super().filter(name, token), name, self.budget)


class BudgetedTemplate(BoundTemplate):
    context_class = BudgetedContext


def _guarded_filter(
    func: Callable[..., object], name: str, budget: RenderBudget, left: object, *args: Any, **kw: Any
) -> object:
    for value in (left, *args):
        if isinstance(value, range) and _range_length(value) > RENDER_ITERATIONS:
            raise RenderBudgetError(f"{name}: a range of more than {RENDER_ITERATIONS} numbers", token=None)
    if name == "replace" and isinstance(left, str) and args:
        _check_replace(left, str(args[0]), str(args[1]) if len(args) > 1 else "", budget.max_string)
    elif (
        name == "join" and isinstance(left, list | tuple) and args and len(left) * len(str(args[0])) > budget.max_string
    ):
        raise RenderBudgetError(f"join: a text of more than {budget.max_string} characters", token=None)
    result = func(left, *args, **kw)
    size = (len(left) if isinstance(left, str) else 0) + (len(result) if isinstance(result, str) else 0)
    if isinstance(result, str) and len(result) > budget.max_string:
        raise RenderBudgetError(f"{name}: a text of more than {budget.max_string} characters", token=None)
    budget.spend_characters(size)
    return result


def _range_length(value: range) -> int:
    try:
        return len(value)
    except OverflowError:  # more numbers than a machine word counts
        return RENDER_ITERATIONS + 1


def _check_replace(text: str, old: str, new: str, limit: int) -> None:
    """``replace`` multiplies a text's length: refuse before building what would be too long to keep."""
    if len(new) <= len(old):
        return
    count = text.count(old) if old else len(text) + 1
    if len(text) + count * (len(new) - len(old)) > limit:
        raise RenderBudgetError(f"replace: a text of more than {limit} characters", token=None)
