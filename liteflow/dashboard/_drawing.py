"""Geometry for the pictures the dashboard draws server-side as SVG: a workflow's graph and the
activity chart. Only numbers and the store's text come out of here; the templates write the SVG,
so every label goes through Jinja's autoescaping like any other value.

The graph layout is deliberately simple (no JavaScript, no Graphviz on the server): steps are
put in rows by their longest distance from the start along forward edges, left to right within a
row; container blocks are dashed boxes around their steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from liteflow.core._providers import ActivityCount

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN, PAD = 190, 40, 28, 46, 16, 8
_FORWARD = {"next", "outcome", "block"}
_LABEL_CHARS = 26


@dataclass
class PlacedNode:
    id: str
    step: int
    label: str
    text: str
    """The label cut to fit the box; ``label`` is the full one, shown as a tooltip."""
    shape: str
    active: bool
    compensation: bool
    x: int
    y: int


@dataclass
class PlacedEdge:
    path: str
    kind: str
    label: str | None
    label_x: int
    label_y: int


@dataclass
class Box:
    label: str
    x: int
    y: int
    w: int
    h: int


@dataclass
class Drawing:
    width: int
    height: int
    nodes: list[PlacedNode] = field(default_factory=list)
    edges: list[PlacedEdge] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    node_w: int = NODE_W
    node_h: int = NODE_H


def _ranks(document: dict[str, Any]) -> dict[str, int]:
    """Longest distance from the first node along forward edges; relaxation stops after one pass
    per node, so a cycle among outcome edges cannot make it run on.

    A step that follows a container also counts as following every step of the container's block,
    so a block sits wholly between its container and what comes after: blocks then occupy rows of
    their own and their boxes nest instead of overlapping.
    """
    nodes: list[dict[str, Any]] = document["nodes"]
    rank = {node["id"]: 0 for node in nodes}
    forward = [(e["source"], e["target"]) for e in document["edges"] if e["kind"] in _FORWARD]
    members = _members(document)
    forward += [
        (member, e["target"])
        for e in document["edges"]
        if e["kind"] in ("next", "outcome")
        for member in members.get(e["source"], ())
    ]
    for _ in range(len(nodes)):
        changed = False
        for source, target in forward:
            if source in rank and target in rank and rank[target] < rank[source] + 1 <= len(nodes):
                rank[target] = rank[source] + 1
                changed = True
        if not changed:
            break
    return rank


def _members(document: dict[str, Any]) -> dict[str, list[str]]:
    """For each container node, the nodes inside its block at any depth."""
    subgraphs: list[dict[str, Any]] = document.get("subgraphs", [])
    parent_of = {g["id"]: g.get("parent") for g in subgraphs}
    container_of = {g["id"]: g["container"] for g in subgraphs}
    found: dict[str, list[str]] = {}
    for node in document["nodes"]:
        group = node.get("subgraph")
        for _ in range(len(subgraphs) + 1):
            if group is None:
                break
            found.setdefault(container_of.get(group, ""), []).append(node["id"])
            group = parent_of.get(group)
    return found


def draw_graph(graph_json: str) -> Drawing:
    """Lay out the JSON form of :func:`liteflow.core.workflow_graph`."""
    document = json.loads(graph_json)
    nodes: list[dict[str, Any]] = document["nodes"]
    edges: list[dict[str, Any]] = document["edges"]
    rank = _ranks(document)
    rows: dict[int, list[dict[str, Any]]] = {}
    for node in nodes:
        rows.setdefault(rank[node["id"]], []).append(node)
    widest = max((len(row) for row in rows.values()), default=1)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    placed: dict[str, PlacedNode] = {}
    for row_number, row in sorted(rows.items()):
        row_width = len(row) * NODE_W + (len(row) - 1) * GAP_X
        left = (width - row_width) // 2
        for column, node in enumerate(row):
            label = str(node["label"])
            text = label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"
            placed[node["id"]] = PlacedNode(
                id=node["id"],
                step=int(node["step"]),
                label=label,
                text=text,
                shape=str(node["shape"]),
                active=bool(node["active"]),
                compensation=bool(node["compensation"]),
                x=left + column * (NODE_W + GAP_X),
                y=MARGIN + PAD * 3 + row_number * (NODE_H + GAP_Y),
            )
    height = max((n.y + NODE_H for n in placed.values()), default=0) + MARGIN + PAD * 2
    drawing = Drawing(width=width, height=height, nodes=list(placed.values()))
    drawing.edges = [_edge(placed[e["source"]], placed[e["target"]], e) for e in edges if _known(e, placed)]
    drawing.boxes = _boxes(document.get("subgraphs", []), nodes, placed)
    return drawing


def _known(edge: dict[str, Any], placed: dict[str, PlacedNode]) -> bool:
    return edge["source"] in placed and edge["target"] in placed


def _edge(source: PlacedNode, target: PlacedNode, edge: dict[str, Any]) -> PlacedEdge:
    label = None if edge.get("label") is None else str(edge["label"])
    x1, x2 = source.x + NODE_W // 2, target.x + NODE_W // 2
    if target.y > source.y + NODE_H + GAP_Y:  # down past other rows: round the left-hand side
        x1, x2 = source.x, target.x
        y1, y2 = source.y + NODE_H // 2, target.y + NODE_H // 2
        reach = max(0, min(x1, x2) - GAP_X)
        path = f"M {x1} {y1} C {reach} {y1}, {reach} {y2}, {x2} {y2}"
        return PlacedEdge(path, str(edge["kind"]), label, reach + 2, (y1 + y2) // 2)
    if target.y > source.y:  # to the next row: bottom of one box to the top of the other
        y1, y2 = source.y + NODE_H, target.y
        bend = (y2 - y1) // 2
        path = f"M {x1} {y1} C {x1} {y1 + bend}, {x2} {y2 - bend}, {x2} {y2}"
        return PlacedEdge(path, str(edge["kind"]), label, (x1 + x2) // 2 + 4, (y1 + y2) // 2)
    # Back or sideways (a loop, a compensation): round the right-hand side of both boxes.
    x1, x2 = source.x + NODE_W, target.x + NODE_W
    y1, y2 = source.y + NODE_H // 2, target.y + NODE_H // 2
    reach = max(x1, x2) + GAP_X
    path = f"M {x1} {y1} C {reach} {y1}, {reach} {y2}, {x2} {y2}"
    return PlacedEdge(path, str(edge["kind"]), label, reach - 6, (y1 + y2) // 2)


def _boxes(subgraphs: list[dict[str, Any]], nodes: list[dict[str, Any]], placed: dict[str, PlacedNode]) -> list[Box]:
    parent_of = {g["id"]: g.get("parent") for g in subgraphs}

    def inside(subgraph: str | None, target: str) -> bool:
        seen = 0
        while subgraph is not None and seen <= len(subgraphs):
            if subgraph == target:
                return True
            subgraph, seen = parent_of.get(subgraph), seen + 1
        return False

    boxes = []
    for group in subgraphs:
        members = [placed[n["id"]] for n in nodes if n["id"] in placed and inside(n.get("subgraph"), group["id"])]
        if not members:
            continue
        depth = sum(1 for _ in _ancestors(group["id"], parent_of, len(subgraphs)))
        pad = PAD * 2 - min(depth, 1) * (PAD // 2)
        left = min(m.x for m in members) - pad
        top = min(m.y for m in members) - pad - 12
        right = max(m.x for m in members) + NODE_W + pad
        bottom = max(m.y for m in members) + NODE_H + pad
        boxes.append(Box(str(group["label"]), left, top, right - left, bottom - top))
    return boxes


def _ancestors(subgraph: str, parent_of: dict[str, Any], limit: int) -> list[str]:
    found: list[str] = []
    current = parent_of.get(subgraph)
    while current is not None and len(found) <= limit:
        found.append(current)
        current = parent_of.get(current)
    return found


@dataclass
class Chart:
    width: int
    height: int
    series: list[tuple[str, str, int]]
    """(name, polyline points, total) for started, completed and terminated."""
    peak: int
    first: str
    last: str


def draw_chart(counts: list[ActivityCount], *, width: int = 720, height: int = 150) -> Chart:
    """Three lines over the periods of ``counts``; the y axis runs from 0 to the busiest period."""
    peak = max([1, *(max(c.started, c.completed, c.terminated) for c in counts)])
    step = (width - 2 * MARGIN) / max(1, len(counts) - 1)
    plot = height - 2 * MARGIN

    def points(values: list[int]) -> str:
        return " ".join(
            f"{MARGIN + i * step:.1f},{MARGIN + plot - value * plot / peak:.1f}" for i, value in enumerate(values)
        )

    series = [
        ("started", points([c.started for c in counts]), sum(c.started for c in counts)),
        ("completed", points([c.completed for c in counts]), sum(c.completed for c in counts)),
        ("terminated", points([c.terminated for c in counts]), sum(c.terminated for c in counts)),
    ]
    first = counts[0].start.strftime("%H:%M") if counts else ""
    last = counts[-1].start.strftime("%H:%M") if counts else ""
    return Chart(width, height, series, peak, first, last)
