"""``workflow_graph``: a workflow definition as a Mermaid or Graphviz (DOT) diagram, or as JSON.

The graph is drawn from the built definition (the steps a host runs), so it works the same for
fluent and loaded workflows: one node per step, edges for ``next`` and outcomes (solid), blocks of
containers (dashed), loops back to a ``while`` and compensation (dotted), and each container's
block as a subgraph. ``when`` blocks are drawn as outcome edges from the deciding step, labelled with
the value, not through the hidden step that runs them. Given an instance, the steps it is on are
highlighted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ._builder import Workflow
from ._errors import InvalidArgumentError
from ._models import PointerStatus, WorkflowInstance
from ._steps import _ANY, WorkflowDefinition, WorkflowStep
from ._structure import (
    constant,
    definition_of,
    expression_text,
    input_function,
    kind,
    short_name,
    successors,
    whens,
)

_CONTAINERS = frozenset({"for_each", "while", "if", "decide", "parallel", "saga", "when"})
# The input of each built-in step worth showing on its node.
_DETAIL = {
    "for_each": "collection",
    "while": "condition",
    "if": "condition",
    "decide": "expression",
    "delay": "period",
    "wait_for": "event_key",
}
ACTIVE_STYLE = "fill:#fde68a,stroke:#b45309,stroke-width:2px"


@dataclass
class Node:
    id: str
    step: int
    label: str
    type: str
    shape: str
    """``step`` (a step body), ``builtin`` (delay, wait_for...) or ``container``."""
    subgraph: str | None
    active: bool = False
    compensation: bool = False


@dataclass
class Edge:
    source: str
    target: str
    kind: str
    """``next``, ``outcome``, ``block``, ``loop`` or ``compensation``."""
    label: str | None = None


@dataclass
class Subgraph:
    id: str
    container: str
    label: str
    parent: str | None


def workflow_graph(
    workflow: Workflow | type[Workflow] | WorkflowDefinition,
    format: str = "mermaid",
    instance: WorkflowInstance | None = None,
) -> str:
    """Draw a workflow definition.

    Args:
        workflow: a :class:`Workflow` (fluent or from ``load_workflow``), a Workflow class, or a
            built definition.
        format: ``"mermaid"`` (a flowchart), ``"dot"`` (Graphviz) or ``"json"`` (nodes, edges and
            subgraphs as a JSON document).
        instance: optionally an instance of this workflow: the steps it is on (running, sleeping,
            retrying or waiting for an event) are highlighted.

    Raises:
        InvalidArgumentError: an unknown format.
    """
    renderers = {"mermaid": _mermaid, "dot": _dot, "json": _json}
    if format not in renderers:
        raise InvalidArgumentError(f"workflow_graph format must be 'mermaid', 'dot' or 'json', got {format!r}")
    definition = definition_of(workflow)
    active: set[int] = set()
    if instance is not None:
        # A pointer waiting for an event is inactive until the event comes, but the instance is on it.
        waiting = PointerStatus.WAITING_FOR_EVENT
        active = {p.step_id for p in instance.execution_pointers if p.active or p.status is waiting}
    nodes, edges, subgraphs = _Graph(definition, active).build()
    return renderers[format](definition, nodes, edges, subgraphs)


class _Graph:
    def __init__(self, definition: WorkflowDefinition, active: set[int]) -> None:
        self.definition = definition
        self.steps = definition.steps
        self.active = active
        self.scope: dict[int, int | None] = {}

    def build(self) -> tuple[list[Node], list[Edge], list[Subgraph]]:
        self._assign_scopes()
        nodes = [self._node(step) for step in self.steps if step.id in self.scope]
        edges = [edge for step in self.steps if step.id in self.scope for edge in self._edges(step)]
        containers = sorted({parent for parent in self.scope.values() if parent is not None})
        subgraphs = [
            Subgraph(_block_id(c), _node_id(c), self._label(self.steps[c]), self._subgraph_of(c)) for c in containers
        ]
        return nodes, edges, subgraphs

    def _assign_scopes(self) -> None:
        # Breadth first from the start: a step belongs to the block it is first reached in.
        pending: list[tuple[int, int | None]] = [(self.definition.start_step, None)]
        while pending:
            step_id, parent = pending.pop(0)
            if step_id in self.scope:
                continue
            self.scope[step_id] = parent
            step = self.steps[step_id]
            pending.extend((block, parent) for _, block in whens(self.definition, step))
            pending.extend((following, parent) for following in successors(self.definition, step))
            pending.extend((o.next_step, parent) for o in step.outcomes if o.value is not _ANY)
            pending.extend((child, step_id) for child in step.children)
            if step.compensation_step is not None:
                pending.append((step.compensation_step, parent))

    def _goes_on(self, step: WorkflowStep) -> bool:
        """Whether a step has a step after it (a step with when blocks and no next ends its block)."""
        return bool(successors(self.definition, step)) or any(o.value is not _ANY for o in step.outcomes)

    def _subgraph_of(self, step_id: int) -> str | None:
        parent = self.scope.get(step_id)
        return None if parent is None else _block_id(parent)

    def _label(self, step: WorkflowStep) -> str:
        step_kind = kind(self.definition, step)
        ident = step.external_id or step.name
        if not step_kind:
            name = short_name(step)
            return name if ident in (None, name) else f"{ident}: {name}"
        text = step_kind
        if step_kind == "wait_for":
            text += f" {constant(step, 'event_name', '')}"
        elif step_kind == "sub_workflow":
            text += f" {constant(step, 'workflow_id', '')}"
        detail = _DETAIL.get(step_kind)
        source = expression_text(input_function(step, detail)) if detail else None
        if source is not None:
            text += f" {source}"
        return text if ident is None else f"{ident}: {text}"

    def _node(self, step: WorkflowStep) -> Node:
        step_kind = kind(self.definition, step)
        shape = "container" if step_kind in _CONTAINERS else "builtin" if step_kind else "step"
        return Node(
            id=_node_id(step.id),
            step=step.id,
            label=self._label(step),
            type=step_kind or short_name(step),
            shape=shape,
            subgraph=self._subgraph_of(step.id),
            active=step.id in self.active,
            compensation=step.is_compensation,
        )

    def _edges(self, step: WorkflowStep) -> list[Edge]:
        source = _node_id(step.id)
        edges = [Edge(source, _node_id(block), "outcome", repr(value)) for value, block in whens(self.definition, step)]
        edges.extend(Edge(source, _node_id(following), "next") for following in successors(self.definition, step))
        valued = [o for o in step.outcomes if o.value is not _ANY]
        edges.extend(Edge(source, _node_id(o.next_step), "outcome", repr(o.value)) for o in valued)
        branches = {child: repr(value) for value, child in constant(step, "branches", None) or []}
        edges.extend(Edge(source, _node_id(child), "block", branches.get(child)) for child in step.children)
        if kind(self.definition, step) == "while":
            ends = [s for s, parent in self.scope.items() if parent == step.id and not self._goes_on(self.steps[s])]
            edges.extend(Edge(_node_id(end), source, "loop", "repeat") for end in sorted(ends))
        if step.compensation_step is not None:
            edges.append(Edge(source, _node_id(step.compensation_step), "compensation", "compensate"))
        return edges


def _node_id(step_id: int) -> str:
    return f"s{step_id}"


def _block_id(step_id: int) -> str:
    return f"s{step_id}_block"


def _in(subgraph: str | None, nodes: list[Node], subgraphs: list[Subgraph]) -> tuple[list[Node], list[Subgraph]]:
    return [n for n in nodes if n.subgraph == subgraph], [g for g in subgraphs if g.parent == subgraph]


# -- Mermaid ----------------------------------------------------------------------------------------

_MERMAID_SHAPES = {"step": ('["', '"]'), "builtin": ('(["', '"])'), "container": ('{{"', '"}}')}
_MERMAID_ARROWS = {"next": "-->", "outcome": "-->", "block": "-.->", "loop": "-.->", "compensation": "-.->"}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid(definition: WorkflowDefinition, nodes: list[Node], edges: list[Edge], subgraphs: list[Subgraph]) -> str:
    lines = ["flowchart TD"]

    def scope(subgraph: str | None, indent: str) -> None:
        inner_nodes, inner_subgraphs = _in(subgraph, nodes, subgraphs)
        for node in inner_nodes:
            left, right = _MERMAID_SHAPES[node.shape]
            lines.append(f"{indent}{node.id}{left}{_mermaid_text(node.label)}{right}")
            for child in (g for g in inner_subgraphs if g.container == node.id):
                lines.append(f'{indent}subgraph {child.id} ["{_mermaid_text(child.label)}"]')
                scope(child.id, indent + "    ")
                lines.append(f"{indent}end")

    scope(None, "    ")
    for edge in edges:
        label = "" if edge.label is None else f'|"{_mermaid_text(edge.label)}"|'
        lines.append(f"    {edge.source} {_MERMAID_ARROWS[edge.kind]}{label} {edge.target}")
    compensations = [n.id for n in nodes if n.compensation]
    if compensations:
        lines.append("    classDef compensation stroke-dasharray:4 3")
        lines.append(f"    class {','.join(compensations)} compensation")
    active = [n.id for n in nodes if n.active]
    if active:
        lines.append(f"    classDef active {ACTIVE_STYLE}")
        lines.append(f"    class {','.join(active)} active")
    return "\n".join(lines) + "\n"


# -- Graphviz ---------------------------------------------------------------------------------------

_DOT_SHAPES = {"step": "box", "builtin": "box, style=rounded", "container": "hexagon"}
_DOT_STYLES = {
    "next": "",
    "outcome": "",
    "block": "style=dashed",
    "loop": "style=dotted",
    "compensation": "style=dotted",
}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(definition: WorkflowDefinition, nodes: list[Node], edges: list[Edge], subgraphs: list[Subgraph]) -> str:
    lines = [f"digraph {_dot_text(f'{definition.id} v{definition.version}')} {{", "    rankdir=TB;"]

    def scope(subgraph: str | None, indent: str) -> None:
        inner_nodes, inner_subgraphs = _in(subgraph, nodes, subgraphs)
        for node in inner_nodes:
            attributes = [f"label={_dot_text(node.label)}", f"shape={_DOT_SHAPES[node.shape]}"]
            if node.compensation:
                attributes.append("style=dashed")
            if node.active:
                attributes.append('style=filled, fillcolor="#fde68a", color="#b45309"')
            lines.append(f"{indent}{node.id} [{', '.join(attributes)}];")
            for child in (g for g in inner_subgraphs if g.container == node.id):
                lines.append(f"{indent}subgraph cluster_{child.id} {{")
                lines.append(f"{indent}    label={_dot_text(child.label)};")
                scope(child.id, indent + "    ")
                lines.append(f"{indent}}}")

    scope(None, "    ")
    for edge in edges:
        attributes = [a for a in (_DOT_STYLES[edge.kind],) if a]
        if edge.label is not None:
            attributes.append(f"label={_dot_text(edge.label)}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- JSON -------------------------------------------------------------------------------------------


def _json(definition: WorkflowDefinition, nodes: list[Node], edges: list[Edge], subgraphs: list[Subgraph]) -> str:
    document: dict[str, Any] = {
        "id": definition.id,
        "version": definition.version,
        "nodes": [asdict(node) for node in nodes],
        "edges": [asdict(edge) for edge in edges],
        "subgraphs": [asdict(subgraph) for subgraph in subgraphs],
    }
    return json.dumps(document, indent=2)
