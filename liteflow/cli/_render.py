"""What the reading commands print: the same facts as JSON (for scripts) and as rich tables."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from liteflow.core import ExecutionError, ExecutionPointer, PointerStatus, WorkflowHost, WorkflowInstance
from liteflow.core._serialization import to_jsonable
from liteflow.core._steps import WorkflowDefinition


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole rows on one line (ids are 32 characters) unless COLUMNS says otherwise.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def when(value: datetime | None) -> str:
    """A time as people read it in a table: UTC, to the second."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


class Steps:
    """Names the steps of instances, from their definitions when this process has them (--app)."""

    def __init__(self, host: WorkflowHost) -> None:
        self._host = host

    def definition(self, instance: WorkflowInstance) -> WorkflowDefinition | None:
        return self._host.registry.find(instance.workflow_definition_id, instance.version)

    def name(self, instance: WorkflowInstance, step_id: int) -> str | None:
        definition = self.definition(instance)
        if definition is None or not 0 <= step_id < len(definition.steps):
            return None
        step = definition.steps[step_id]
        return step.name or step.body_name.rsplit(".", 1)[-1]

    def label(self, instance: WorkflowInstance, step_id: int) -> str:
        name = self.name(instance, step_id)
        return f"#{step_id}" if name is None else f"{name} (#{step_id})"


def current_pointers(instance: WorkflowInstance) -> list[ExecutionPointer]:
    """The open pointers with nothing open inside them: where the workflow is now."""
    open_pointers = [p for p in instance.execution_pointers if p.end_time is None]
    containers = {scope_id for p in open_pointers for scope_id in p.scope}
    return [p for p in open_pointers if p.id not in containers]


def last_activity(instance: WorkflowInstance) -> datetime:
    times = [instance.create_time, instance.complete_time]
    for pointer in instance.execution_pointers:
        times += [pointer.start_time, pointer.end_time]
    return max(t for t in times if t is not None)


def attempts(pointer: ExecutionPointer) -> int:
    return pointer.retry_count + (0 if pointer.start_time is None or pointer.status is PointerStatus.FAILED else 1)


def summary(instance: WorkflowInstance, steps: Steps) -> dict[str, Any]:
    return {
        "id": instance.id,
        "workflow": instance.workflow_definition_id,
        "version": instance.version,
        "status": instance.status.value,
        "reference": instance.reference,
        "current_steps": [
            {"step_id": p.step_id, "step": steps.name(instance, p.step_id), "status": p.status.value}
            for p in current_pointers(instance)
        ],
        "created": iso(instance.create_time),
        "last_activity": iso(last_activity(instance)),
        "completed": iso(instance.complete_time),
        "next_execution": iso(instance.next_execution),
        "parent_workflow_id": instance.parent_workflow_id,
    }


def timeline(instance: WorkflowInstance, steps: Steps) -> list[dict[str, Any]]:
    return [
        {
            "pointer_id": p.id,
            "step_id": p.step_id,
            "step": steps.name(instance, p.step_id),
            "status": p.status.value,
            "started": iso(p.start_time),
            "ended": iso(p.end_time),
            "attempts": attempts(p),
            "outcome": to_jsonable(p.outcome, "outcome"),
            "item": to_jsonable(p.context_item, "item"),
        }
        for p in instance.execution_pointers
    ]


def compacted_steps(instance: WorkflowInstance, steps: Steps) -> list[dict[str, Any]]:
    """The finished loop rounds folded out of the timeline (see ``liteflow.core._compaction``):
    per step, how many runs, how they ended, their failed attempts, first start and last end."""
    history = instance.compacted
    if history is None:
        return []
    return [
        {
            "step_id": step_id,
            "step": steps.name(instance, step_id),
            "runs": tally.runs,
            "statuses": dict(tally.statuses),
            "failed_attempts": tally.failed_attempts,
            "first_started": iso(tally.first_start),
            "last_ended": iso(tally.last_end),
        }
        for step_id, tally in sorted(history.steps.items())
    ]


def waits(instance: WorkflowInstance, steps: Steps) -> list[dict[str, Any]]:
    return [
        {
            "step_id": p.step_id,
            "step": steps.name(instance, p.step_id),
            "event_name": p.event_name,
            "event_key": p.event_key,
            "since": iso(p.start_time),
        }
        for p in instance.execution_pointers
        if p.status is PointerStatus.WAITING_FOR_EVENT
    ]


def error_record(error: ExecutionError, instance: WorkflowInstance | None, steps: Steps) -> dict[str, Any]:
    return {
        "time": iso(error.error_time),
        "workflow_id": error.workflow_id,
        "step_id": error.step_id,
        "step": None if instance is None else steps.name(instance, error.step_id),
        "attempt": error.attempt,
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
    }


def instances_table(instances: list[WorkflowInstance], steps: Steps) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=32)
    for title in ("WORKFLOW", "STATUS", "CURRENT STEP", "CREATED (UTC)", "LAST ACTIVITY"):
        table.add_column(title, no_wrap=title != "CURRENT STEP")
    for instance in instances:
        current = ", ".join(steps.label(instance, p.step_id) for p in current_pointers(instance))
        table.add_row(
            instance.id,
            f"{instance.workflow_definition_id} v{instance.version}",
            instance.status.value,
            current or "-",
            when(instance.create_time),
            when(last_activity(instance)),
        )
    return table


def show_instance(out: Console, instance: WorkflowInstance, steps: Steps, errors: list[ExecutionError]) -> None:
    out.print(f"[bold]Workflow {instance.id}[/bold]")
    facts = Table.grid(padding=(0, 2))
    rows = [
        ("definition", f"{instance.workflow_definition_id} v{instance.version}"),
        ("status", instance.status.value),
        ("reference", instance.reference or "-"),
        ("created", when(instance.create_time) + " UTC"),
        ("completed", when(instance.complete_time) or "-"),
        ("next run", when(instance.next_execution) or "-"),
    ]
    if instance.parent_workflow_id:
        rows.append(("parent", instance.parent_workflow_id))
    for name, value in rows:
        facts.add_row(name, value)
    out.print(facts)
    out.print("\n[bold]Data[/bold]")
    out.print(json.dumps(to_jsonable(instance.data, "data"), indent=2, ensure_ascii=False), markup=False)
    out.print("\n[bold]Steps[/bold]")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("STEP", "STATUS", "STARTED", "ENDED", "ATTEMPTS", "OUTCOME"):
        table.add_column(title, no_wrap=title != "OUTCOME")
    for step in timeline(instance, steps):
        pointer = instance.pointer(step["pointer_id"])
        assert pointer is not None
        outcome = "" if step["outcome"] is None else json.dumps(step["outcome"])
        table.add_row(
            steps.label(instance, pointer.step_id),
            pointer.status.value,
            when(pointer.start_time),
            when(pointer.end_time),
            str(step["attempts"]),
            outcome,
        )
    out.print(table)
    folded = compacted_steps(instance, steps)
    if folded:
        out.print("\n[bold]Earlier loop rounds[/bold] (compacted)")
        for row in folded:
            ended = ", ".join(f"{status} {count:,}" for status, count in sorted(row["statuses"].items()))
            failed = f"; {row['failed_attempts']:,} failed attempts" if row["failed_attempts"] else ""
            label = steps.label(instance, row["step_id"])
            out.print(f"  {label}: {row['runs']:,} runs ({ended}){failed}", markup=False)
    waiting = waits(instance, steps)
    if waiting:
        out.print("\n[bold]Waiting for[/bold]")
        for wait in waiting:
            label = steps.label(instance, wait["step_id"])
            out.print(f"  event {wait['event_name']!r} key {wait['event_key']!r} (step {label})", markup=False)
    if errors:
        out.print(f"\n[bold]Errors[/bold] ({len(errors)}, oldest first)")
        for error in errors:
            print_error(out, error, instance, steps)


def print_error(out: Console, error: ExecutionError, instance: WorkflowInstance | None, steps: Steps) -> None:
    step = f"#{error.step_id}" if instance is None else steps.label(instance, error.step_id)
    out.print(
        f"{when(error.error_time)}  workflow {error.workflow_id}  step {step}  attempt {error.attempt}", markup=False
    )
    out.print(f"  {error.error_type}: {error.message}", markup=False)
    if error.traceback:
        out.print("    " + error.traceback.rstrip().replace("\n", "\n    "), markup=False)
