"""A workflow's definition drawn as SVG on the server: one box per activity (its name and kind), one arrow per
transition (labelled with its outcome unless it is "done"), laid out left to right by depth. Drawn from the raw
JSON, so even a definition that no longer validates shows what it holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from envoi.workflows.activities import ACTIVITIES

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 176, 54, 84, 26, 16
_NAME_CHARS, _KIND_CHARS = 22, 26


@dataclass
class _Node:
    name: str
    kind: str
    label: str
    order: int
    depth: int = 0
    row: float = 0.0
    before: list[str] = field(default_factory=list)


def _transitions(item: dict[str, Any]) -> list[tuple[str, str]]:
    """(outcome, next activity) of an activity; a plain list follows the kind's first outcome."""
    raw = item.get("next") or []
    if isinstance(raw, list):
        activity = ACTIVITIES.get(str(item.get("kind")))
        raw = {activity.outcomes[0] if activity else "done": raw}
    if not isinstance(raw, dict):
        return []
    return [
        (str(outcome), name)
        for outcome, names in raw.items()
        if isinstance(names, list)
        for name in names
        if isinstance(name, str)
    ]


def _read(definition: Any) -> tuple[dict[str, _Node], list[tuple[str, str, str]]]:
    activities = definition.get("activities") if isinstance(definition, dict) else None
    items = [item for item in activities or [] if isinstance(item, dict) and isinstance(item.get("name"), str)]
    nodes: dict[str, _Node] = {}
    for item in items:
        if item["name"] not in nodes:
            label = item["label"] if isinstance(item.get("label"), str) else ""
            nodes[item["name"]] = _Node(item["name"], str(item.get("kind", "?")), label, len(nodes))
    edges = [
        (item["name"], outcome, target)
        for item in items
        for outcome, target in _transitions(item)
        if target in nodes and target != item["name"]
    ]
    return nodes, edges


def _layer(nodes: dict[str, _Node], edges: list[tuple[str, str, str]]) -> list[list[_Node]]:
    """Columns by longest path from a start (capped: a cycle in a broken definition cannot loop forever)."""
    for source, _outcome, target in edges:
        nodes[target].before.append(source)
    for _ in range(len(nodes)):
        changed = False
        for source, _outcome, target in edges:
            if nodes[target].depth < nodes[source].depth + 1 and nodes[source].depth + 1 < len(nodes):
                nodes[target].depth, changed = nodes[source].depth + 1, True
        if not changed:
            break
    columns: list[list[_Node]] = [[] for _ in range(max((n.depth for n in nodes.values()), default=-1) + 1)]
    for node in sorted(nodes.values(), key=lambda n: n.order):
        columns[node.depth].append(node)
    for index, column in enumerate(columns):  # beside their predecessors, to keep arrows short and uncrossed
        if index:
            column.sort(key=lambda n: (_mean(nodes[b].row for b in n.before if nodes[b].depth < index), n.order))
        for row, node in enumerate(column):
            node.row = row
    return columns


def _mean(values: Iterable[float]) -> float:
    found = list(values)
    return sum(found) / len(found) if found else 0.0


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def workflow_graph(
    definition: Any, *, failed: str | None = None, waiting: Iterable[str] = (), label: str = "The workflow"
) -> Markup | None:
    """The graph as an inline SVG (None when there is no activity); ``failed`` is outlined in red, ``waiting``
    (the activities a run still has to do) in blue."""
    nodes, edges = _read(definition)
    if not nodes:
        return None
    columns = _layer(nodes, edges)
    tallest = max(len(column) for column in columns)
    width = 2 * _PAD + len(columns) * _BOX_W + (len(columns) - 1) * _GAP_X
    height = 2 * _PAD + tallest * _BOX_H + (tallest - 1) * _GAP_Y
    at: dict[str, tuple[float, float]] = {}
    for index, column in enumerate(columns):
        offset = (tallest - len(column)) * (_BOX_H + _GAP_Y) / 2
        for node in column:
            at[node.name] = (_PAD + index * (_BOX_W + _GAP_X), _PAD + offset + node.row * (_BOX_H + _GAP_Y))
    body = [
        '<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
    ]
    for source, outcome, target in edges:
        (x1, y1), (x2, y2) = at[source], at[target]
        x1, y1, y2 = x1 + _BOX_W, y1 + _BOX_H / 2, y2 + _BOX_H / 2
        bend = (x2 - x1) / 2
        body.append(
            f'<path class="transition" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" marker-end="url(#wf-arrow)"><title>{escape(source)} → {escape(target)}'
            f"{escape(f' ({outcome})') if outcome != 'done' else ''}</title></path>"
        )
        if outcome != "done":
            body.append(
                f'<text class="outcome" x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" text-anchor="middle">'
                f"{escape(_short(outcome, 16))}</text>"
            )
    waiting = set(waiting)
    for node in nodes.values():
        x, y = at[node.name]
        state = " failed" if node.name == failed else " waiting" if node.name in waiting else ""
        title = f"{node.name} ({node.kind})" + (f": {node.label}" if node.label else "")
        title += {" failed": " — failed: the run is suspended here", " waiting": " — still to do"}.get(state, "")
        body.append(
            f'<g class="activity{state}" data-activity="{escape(node.name)}" data-kind="{escape(node.kind)}">'
            f"<title>{escape(title)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="7"/>'
            f'<text class="name" x="{x + 12:.1f}" y="{y + 23:.1f}">{escape(_short(node.name, _NAME_CHARS))}</text>'
            f'<text class="kind" x="{x + 12:.1f}" y="{y + 41:.1f}">{escape(_short(node.kind, _KIND_CHARS))}</text>'
            "</g>"
        )
    # Safe: the markup is ours, and every piece of text in ``body`` went through escape() where it was made.
    return Markup(  # noqa: S704
        f'<svg class="workflow-graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )
