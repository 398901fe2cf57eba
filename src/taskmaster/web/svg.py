"""Pictures drawn on the server as SVG: a pipeline's step graph, its timing waterfall, and a task graph.

Pure functions from plain values to markup (every name escaped), so pages need no script to show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 34, 50, 14, 8


@dataclass(frozen=True, slots=True)
class Node:
    """One box of a graph: `key` identifies it, `needs` are the keys it depends on, `state` colours it."""

    key: str
    label: str
    needs: tuple[str, ...]
    state: str
    href: str | None = None
    marked: bool = False


def layers(nodes: Sequence[Node]) -> dict[str, int]:
    """Each node's column: the length of the longest chain of needs below it (unknown needs are ignored, a cycle
    is cut where it closes)."""
    by_key = {node.key: node for node in nodes}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in depth:
            return depth[key]
        if key in visiting:
            return 0
        visiting.add(key)
        below = [visit(need) + 1 for need in by_key[key].needs if need in by_key]
        visiting.discard(key)
        depth[key] = max(below, default=0)
        return depth[key]

    for node in nodes:
        visit(node.key)
    return depth


def graph(nodes: Sequence[Node], *, title: str) -> str:
    """A left-to-right graph: columns by dependency depth, arrows from each need to its dependent."""
    if not nodes:
        return ""
    depth = layers(nodes)
    columns: dict[int, list[Node]] = {}
    for node in nodes:
        columns.setdefault(depth[node.key], []).append(node)
    place: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        for row, node in enumerate(members):
            place[node.key] = (PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + (max(columns) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(m) for m in columns.values()) * (NODE_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg class="graph" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="edge-head"/></marker></defs>',
    ]
    for node in nodes:
        x2, y2 = place[node.key]
        for need in node.needs:
            if need not in place:
                continue
            x1, y1 = place[need]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" marker-end="url(#arrow)"/>'
            )
    for node in nodes:
        x, y = place[node.key]
        label = node.label if len(node.label) <= 20 else node.label[:19] + "…"
        box = (
            f'<g class="node s-{escape(node.state)}{" critical" if node.marked else ""}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 21}">{escape(label)}</text>'
            f"<title>{escape(node.label)}: {escape(node.state)}</title></g>"
        )
        parts.append(f'<a href="{escape(node.href)}">{box}</a>' if node.href else box)
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Bar:
    """One timed span of a waterfall row (an attempt of a step)."""

    start: datetime
    end: datetime | None
    state: str


ROW_H, LABEL_W, CHART_W = 22, 140, 560


def waterfall(rows: Mapping[str, Sequence[Bar]], *, origin: datetime | None, now: datetime, title: str) -> str:
    """Each step's attempts as bars on one time axis from `origin` (the pipeline's start); a bar without an end
    runs to `now`. The gap before a step's first bar is the time it waited."""
    spans = [bar for bars in rows.values() for bar in bars]
    if not spans or origin is None:
        return ""
    end = max((bar.end or now) for bar in spans)
    total = max((end - origin).total_seconds(), 0.001)
    scale = CHART_W / total
    height = ROW_H * len(rows) + 24
    parts = [
        f'<svg class="waterfall" role="img" aria-label="{escape(title)}" viewBox="0 0 {LABEL_W + CHART_W + 10} '
        f'{height}" width="{LABEL_W + CHART_W + 10}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (name, bars) in enumerate(rows.items()):
        y = index * ROW_H
        parts.append(f'<text class="wf-label" x="0" y="{y + 15}">{escape(name[:18])}</text>')
        for bar in bars:
            x = LABEL_W + max(0.0, (bar.start - origin).total_seconds()) * scale
            w = max(2.0, ((bar.end or now) - bar.start).total_seconds() * scale)
            seconds = ((bar.end or now) - bar.start).total_seconds()
            parts.append(
                f'<rect class="bar s-{escape(bar.state)}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW_H - 8}">'
                f"<title>{escape(name)}: {escape(bar.state)}, {seconds:.1f} s</title></rect>"
            )
    axis_y = ROW_H * len(rows) + 16
    parts.append(f'<text class="wf-axis" x="{LABEL_W}" y="{axis_y}">0 s</text>')
    parts.append(f'<text class="wf-axis" x="{LABEL_W + CHART_W}" y="{axis_y}" text-anchor="end">{total:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def critical_path(nodes: Sequence[Node], open_states: frozenset[str]) -> set[str]:
    """The longest chain of not-yet-done nodes (by count): what bounds how soon everything can be finished."""
    by_key = {node.key: node for node in nodes if node.state in open_states}
    best: dict[str, tuple[int, str | None]] = {}

    def chain(key: str, seen: frozenset[str]) -> tuple[int, str | None]:
        if key in best:
            return best[key]
        longest: tuple[int, str | None] = (1, None)
        for need in by_key[key].needs:
            if need in by_key and need not in seen:
                length = chain(need, seen | {key})[0] + 1
                if length > longest[0]:
                    longest = (length, need)
        best[key] = longest
        return longest

    if not by_key:
        return set()
    start = max(by_key, key=lambda key: chain(key, frozenset())[0])
    path: set[str] = set()
    current: str | None = start
    while current is not None and current not in path:
        path.add(current)
        current = best[current][1]
    return path
