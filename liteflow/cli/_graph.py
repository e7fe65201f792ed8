"""``liteflow graph``: a workflow definition drawn as Mermaid, Graphviz or JSON."""

from __future__ import annotations

from collections.abc import Sequence

import click

from liteflow.core import Workflow, WorkflowHost, workflow_graph
from liteflow.core._steps import WorkflowDefinition

from ._app import Backends, backend_options, cli
from ._loader import load_target


@cli.command(short_help="Draw a workflow definition.")
@click.argument("target", metavar="MODULE[:ATTR]")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid", show_default=True)
@click.option("--workflow", "definition_id", metavar="ID", help="Which workflow of MODULE, when it defines several.")
@click.option("--instance", metavar="ID", help="Highlight the steps this instance is on (needs --store).")
@backend_options
def graph(target: str, fmt: str, definition_id: str | None, instance: str | None, backends: Backends) -> None:
    """Print the workflow of MODULE[:ATTR] as a graph: a Mermaid flowchart (paste it into any
    Markdown that renders Mermaid), Graphviz dot (`| dot -Tsvg`), or JSON nodes and edges."""
    loaded = load_target(target)
    workflows: Sequence[Workflow | WorkflowDefinition] = (
        loaded.registry.definitions() if isinstance(loaded, WorkflowHost) else loaded
    )
    chosen = [w for w in workflows if definition_id is None or _id(w) == definition_id]
    if not chosen:
        raise click.BadParameter(f"{target} has no workflow {definition_id!r}", param_hint="--workflow")
    if len(chosen) > 1:
        names = ", ".join(sorted({_id(w) for w in chosen}))
        raise click.UsageError(f"{target} defines several workflows ({names}): pick one with --workflow")
    stored = backends.host().get_workflow_instance(instance) if instance else None
    click.echo(workflow_graph(chosen[0], format=fmt, instance=stored).rstrip("\n"))


def _id(workflow: Workflow | WorkflowDefinition) -> str:
    return workflow.id() if isinstance(workflow, Workflow) else workflow.id
