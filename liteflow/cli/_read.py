"""Reading commands: ``list``, ``show`` and ``errors``. Each takes ``--json``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import click

from liteflow.core import ExecutionError, WorkflowHost, WorkflowInstance, WorkflowStatus
from liteflow.core._providers import MAX_QUERY_LIMIT
from liteflow.core._serialization import to_jsonable

from ._app import Backends, Duration, backend_options, cli, json_option
from ._render import (
    Steps,
    compacted_steps,
    console,
    error_record,
    instances_table,
    print_error,
    print_json,
    show_instance,
    summary,
    timeline,
    waits,
)

F = TypeVar("F", bound=Callable[..., Any])
STATUSES = [s.value for s in WorkflowStatus]
_PAGE = 1000


def filter_options(func: F) -> F:
    """The filters of ``list``, shared by the bulk forms of suspend, resume and terminate."""
    options = [
        click.option("--status", type=click.Choice(STATUSES), help="Only workflows in this status."),
        click.option("--workflow", "definition", metavar="DEFINITION_ID", help="Only this workflow definition."),
        click.option("--reference", metavar="R", help="Only workflows started with this reference."),
        click.option("--since", type=Duration(), help="Only workflows created in this last period (1h, 2d...)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def select(
    host: WorkflowHost,
    *,
    status: str | None,
    definition: str | None,
    reference: str | None,
    since: timedelta | None,
    limit: int | None = None,
) -> Iterator[WorkflowInstance]:
    """The instances matching the filters, oldest first, page by page (all of them without ``limit``)."""
    created_from = None if since is None else host.options.clock() - since
    offset = 0
    while limit is None or offset < limit:
        size = _PAGE if limit is None else min(_PAGE, limit - offset)
        page = host.query_workflows(
            status=None if status is None else WorkflowStatus(status),
            workflow_id=definition,
            reference=reference,
            created_from=created_from,
            limit=size,
            offset=offset,
        )
        yield from page
        if len(page) < size:
            return
        offset += size


@cli.command("list", short_help="List workflows.")
@filter_options
@click.option("--limit", type=click.IntRange(1, MAX_QUERY_LIMIT), default=50, show_default=True, help="Show at most N.")
@json_option
@backend_options
def list_(
    status: str | None,
    definition: str | None,
    reference: str | None,
    since: timedelta | None,
    limit: int,
    as_json: bool,
    backends: Backends,
) -> None:
    """List workflow instances, oldest first: id, definition, status, current step, times."""
    host = backends.host()
    instances = list(select(host, status=status, definition=definition, reference=reference, since=since, limit=limit))
    steps = Steps(host)
    if as_json:
        print_json([summary(instance, steps) for instance in instances])
    elif not instances:
        click.echo("No workflows match.")
    else:
        console().print(instances_table(instances, steps))
        if len(instances) == limit:
            click.echo(f"(the {limit} oldest that match: narrow with --since or filters, or raise --limit)", err=True)


@cli.command(short_help="Show one workflow in detail.")
@click.argument("workflow_id", metavar="ID")
@json_option
@backend_options
def show(workflow_id: str, as_json: bool, backends: Backends) -> None:
    """Show one workflow: its data, its steps as a timeline, what it waits for, and its errors."""
    host = backends.host()
    instance = host.get_workflow_instance(workflow_id)
    errors = host.get_workflow_errors(workflow_id)
    steps = Steps(host)
    if as_json:
        print_json(
            {
                **summary(instance, steps),
                "data": to_jsonable(instance.data, "data"),
                "steps": timeline(instance, steps),
                "compacted_steps": compacted_steps(instance, steps),
                "waiting_for": waits(instance, steps),
                "errors": [error_record(e, instance, steps) for e in errors],
            }
        )
    else:
        show_instance(console(), instance, steps, errors)


@cli.command(short_help="Show recent step errors.")
@click.argument("workflow_id", metavar="[ID]", required=False)
@click.option("--since", type=Duration(), help="Only errors of workflows created in this last period.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show at most N errors.")
@json_option
@backend_options
def errors(workflow_id: str | None, since: timedelta | None, limit: int, as_json: bool, backends: Backends) -> None:
    """Show recent step errors, newest first: of one workflow, or of all (use --since to look at
    fewer workflows in a large store)."""
    host = backends.host()
    found: list[tuple[ExecutionError, WorkflowInstance]] = []
    if workflow_id is not None:
        instance = host.get_workflow_instance(workflow_id)
        found = [(e, instance) for e in host.get_workflow_errors(workflow_id)]
    else:
        for instance in select(host, status=None, definition=None, reference=None, since=since):
            # Only instances whose steps failed, or that were suspended (possibly by the host), have errors.
            failed = any(p.retry_count for p in instance.execution_pointers) or (
                instance.compacted is not None and any(t.failed_attempts for t in instance.compacted.steps.values())
            )
            if failed or instance.status is not WorkflowStatus.COMPLETE:
                found += [(e, instance) for e in host.persistence.get_errors(instance.id)]
    found.sort(key=lambda pair: pair[0].error_time, reverse=True)
    found = found[:limit]
    steps = Steps(host)
    if as_json:
        print_json([error_record(error, instance, steps) for error, instance in found])
    elif not found:
        click.echo("No errors.")
    else:
        out = console()
        for error, instance in found:
            print_error(out, error, instance, steps)
