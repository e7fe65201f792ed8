"""Commands that change workflows: publish, suspend/resume/terminate (by id or in bulk by filters),
retry, fork and purge.

Everything goes through the store, so it reaches workers on other processes and machines. A
control on a workflow whose step runs on a worker is recorded as a request that the worker applies
when the step returns; when this process has no lock shared with the workers (no --lock, and an
in-process default), every control on a runnable workflow is sent that way, so it never races a
running step.
"""

from __future__ import annotations

import json
from datetime import timedelta

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from liteflow.core import (
    InvalidOperationError,
    LiteFlowError,
    QueueType,
    WorkflowHost,
    WorkflowStatus,
)
from liteflow.core._controls import ControlAction, check_transition, control_request

from ._app import Backends, Duration, backend_options, cli, shares_lock
from ._read import STATUSES, filter_options, select
from ._render import console

_ACTIONS: dict[str, tuple[str, tuple[WorkflowStatus, ...]]] = {
    "suspend": ("suspended", (WorkflowStatus.RUNNABLE,)),
    "resume": ("resumed", (WorkflowStatus.SUSPENDED,)),
    "terminate": ("terminated", (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED)),
}
_PREVIEW = 20


@cli.command(short_help="Publish an event.")
@click.argument("name")
@click.argument("key")
@click.option("--data", "data_json", metavar="JSON", help="The event's data, as JSON.")
@backend_options
def publish(name: str, key: str, data_json: str | None, backends: Backends) -> None:
    """Publish event NAME with KEY to the workflows waiting for it (now or later); prints its id.

    The event is stored, and every worker on the store delivers it, even those that share no queue
    with this command (at their next poll)."""
    data = None
    if data_json is not None:
        try:
            data = json.loads(data_json)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not valid JSON: {error}", param_hint="--data") from error
    click.echo(backends.host().publish_event(name, key, data))


def apply_control(host: WorkflowHost, action: str, workflow_id: str) -> bool:
    """Suspend, resume or terminate one workflow; True if done now, False if left as a request
    for the worker running it."""
    control = ControlAction(action)
    instance = host.get_workflow_instance(workflow_id)
    if control is not ControlAction.RESUME and instance.status is WorkflowStatus.RUNNABLE and not shares_lock(host):
        check_transition(instance, control)
        event = control_request(workflow_id, control, host.options.clock())
        host.persistence.create_event(event)
        host.queue.enqueue(QueueType.EVENT, event.id)
        return False
    getattr(host, f"{action}_workflow")(workflow_id)
    return host.get_workflow_instance(workflow_id).status is not instance.status


def _control_command(action: str) -> None:
    past, allowed = _ACTIONS[action]
    states = " or ".join(s.value for s in allowed)

    @cli.command(
        action,
        short_help=f"{action.capitalize()} workflows by id or by filters.",
        help=f"{action.capitalize()} workflows ({states} ones): those given by ID, or all that the filters "
        f"select. A bulk selection is only shown unless --yes is given.",
    )
    @click.argument("ids", nargs=-1, metavar="[ID]...")
    @filter_options
    @click.option("--yes", "-y", is_flag=True, help="Apply to the filtered selection (else only show it).")
    @backend_options
    @click.pass_context
    def command(
        ctx: click.Context,
        ids: tuple[str, ...],
        status: str | None,
        definition: str | None,
        reference: str | None,
        since: timedelta | None,
        yes: bool,
        backends: Backends,
    ) -> None:
        filtered = any(value is not None for value in (status, definition, reference, since))
        if ids and filtered:
            raise click.UsageError("give workflow ids or filters, not both")
        if not ids and not filtered:
            raise click.UsageError(
                f"give the ids of the workflows to {action}, or filters (--workflow, --status, --reference, "
                "--since) to select them"
            )
        host = backends.host()
        if ids:
            _by_id(ctx, host, action, ids)
            return
        if status is not None and WorkflowStatus(status) not in allowed:
            raise click.BadParameter(f"only {states} workflows can be {past}", param_hint="--status")
        wanted = [WorkflowStatus(status)] if status else list(allowed)
        selected = [
            instance.id
            for state in wanted
            for instance in select(host, status=state.value, definition=definition, reference=reference, since=since)
        ]
        if not selected:
            click.echo("No workflows match.")
        elif not yes:
            _preview(action, selected)
        else:
            _bulk(ctx, host, action, selected)


def _by_id(ctx: click.Context, host: WorkflowHost, action: str, ids: tuple[str, ...]) -> None:
    past = _ACTIONS[action][0]
    failed = 0
    for workflow_id in ids:
        try:
            done = apply_control(host, action, workflow_id)
        except LiteFlowError as error:
            if len(ids) == 1:
                raise
            click.echo(f"error: {workflow_id}: {error}", err=True)
            failed += 1
            continue
        if done:
            click.echo(f"{past} {workflow_id}")
        else:
            when = "when its running step returns" if shares_lock(host) else "at its next poll (see --lock)"
            click.echo(f"{action} of {workflow_id} requested: the worker applies it {when}")
    if failed:
        ctx.exit(1)


def _preview(action: str, selected: list[str]) -> None:
    click.echo(f"Would {action} {len(selected)} workflow{'s' if len(selected) != 1 else ''}:")
    for workflow_id in selected[:_PREVIEW]:
        click.echo(f"  {workflow_id}")
    if len(selected) > _PREVIEW:
        click.echo(f"  ... and {len(selected) - _PREVIEW} more")
    click.echo("Nothing was changed: run again with --yes to do it.")


def _bulk(ctx: click.Context, host: WorkflowHost, action: str, selected: list[str]) -> None:
    past = _ACTIONS[action][0]
    done = requested = skipped = 0
    failures: list[tuple[str, LiteFlowError]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _progress(*columns) as progress:
        task = progress.add_task(action, total=len(selected))
        for workflow_id in selected:
            try:
                if apply_control(host, action, workflow_id):
                    done += 1
                else:
                    requested += 1
            except InvalidOperationError:
                skipped += 1  # it moved on (ended, or changed status) since it was selected
            except LiteFlowError as problem:
                failures.append((workflow_id, problem))
            progress.advance(task)
    parts = [f"{past} {done} of {len(selected)} workflows"]
    if requested:
        parts.append(f"{requested} requested (the workers apply them)")
    if skipped:
        parts.append(f"{skipped} skipped (their status changed meanwhile)")
    if failures:
        parts.append(f"{len(failures)} failed")
    click.echo(", ".join(parts))
    for workflow_id, failure in failures:
        click.echo(f"error: {workflow_id}: {failure}", err=True)
    if failures:
        ctx.exit(1)


def _progress(*columns: ProgressColumn) -> Progress:
    """A progress display on stderr, for people: nothing at all when stderr is not a terminal."""
    out = console(stderr=True)
    return Progress(*columns, console=out, transient=True, disable=not out.is_terminal)


for _action in _ACTIONS:
    _control_command(_action)


@cli.command(short_help="Run a suspended or terminated workflow again.")
@click.argument("workflow_id", metavar="ID")
@click.option("--from-step", metavar="NAME_OR_ID", help="Rewind to this earlier step (name or number).")
@click.option("--compensate", is_flag=True, help="With --from-step: first undo the dropped steps that completed.")
@backend_options
def retry(workflow_id: str, from_step: str | None, compensate: bool, backends: Backends) -> None:
    """Run a suspended or terminated workflow again: its failed steps with fresh attempts, or from
    an earlier step (what followed from it is dropped, without compensation). A step is named by its
    number, or by its name or class name when --app loads the definitions. With --compensate, the
    compensation (compensate_with) of each dropped step that completed runs first, latest first."""
    if compensate and from_step is None:
        raise click.UsageError("--compensate goes with --from-step")
    backends.host().retry_workflow(workflow_id, from_step, compensate=compensate)
    click.echo(f"retried {workflow_id}" + ("" if from_step is None else f" from step {from_step}"))


@cli.command(short_help="Start a copy of a workflow.")
@click.argument("workflow_id", metavar="ID")
@click.option("--from-step", metavar="NAME_OR_ID", help="Start the copy at this top-level step.")
@backend_options
def fork(workflow_id: str, from_step: str | None, backends: Backends) -> None:
    """Start a new workflow with a copy of ID's data, from the beginning or from a step; prints the
    new id. The original is left as it is."""
    click.echo(backends.host().fork_workflow(workflow_id, from_step))


@cli.command(short_help="Delete workflows that ended long ago.")
@click.option("--older-than", type=Duration(), required=True, help="Age of the end of a workflow (30d, 12h...).")
@click.option(
    "--status",
    "statuses",
    default="complete,terminated",
    show_default=True,
    metavar="S[,S]",
    help="Statuses to remove.",
)
@backend_options
def purge(older_than: timedelta, statuses: str, backends: Backends) -> None:
    """Delete workflows that ended more than --older-than ago, with their errors, and the processed
    events published before then."""
    wanted = [s.strip() for s in statuses.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        raise click.BadParameter(f"{statuses!r}: statuses are {', '.join(STATUSES)}", param_hint="--status")
    host = backends.host()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with _progress(*columns) as progress:
        progress.add_task(f"purging {', '.join(wanted)} workflows", total=None)
        count = host.purge([WorkflowStatus(s) for s in wanted], older_than=older_than)
    click.echo(f"purged {count} workflow{'s' if count != 1 else ''}")
