"""``liteflow schedules``: list, add, pause, resume and delete cron schedules.

A schedule is stored like a workflow (see ``liteflow.core._schedules``), so these commands only
need the store; pausing and deleting go through the same control requests as ``liteflow suspend``
and ``terminate``, so they never race a worker that is starting a tick.
"""

from __future__ import annotations

import json
from typing import Any

import click

from liteflow.core import WorkflowHost
from liteflow.core._schedules import INSTANCE_PREFIX, schedule_instance, schedule_workflow

from ._app import Backends, backend_options, cli, json_option
from ._control import apply_control
from ._render import console


@cli.group(short_help="Cron schedules: list, add, pause, resume, delete.")
def schedules() -> None:
    """See and change the cron schedules in the store (the workers start their ticks)."""


@schedules.command("list")
@json_option
@backend_options
def list_(as_json: bool, backends: Backends) -> None:
    """List every schedule with its cron, zone and next run."""
    found = backends.host().list_schedules()
    if as_json:
        rows = [
            {
                "schedule_id": s.schedule_id,
                "workflow_id": s.workflow_id,
                "cron": s.cron,
                "timezone": s.timezone,
                "version": s.version,
                "catch_up": s.catch_up,
                "paused": s.paused,
                "next_run": s.next_run.isoformat() if s.next_run else None,
                "data": s.data,
            }
            for s in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not found:
        click.echo("no schedules")
        return
    for s in found:
        state = "paused" if s.paused else f"next {s.next_run:%Y-%m-%d %H:%M:%S} UTC" if s.next_run else "due"
        console().print(
            f"{s.schedule_id}  {s.workflow_id}  '{s.cron}' {s.timezone}  catch-up {s.catch_up}  {state}",
            markup=False,
            highlight=False,
        )


@schedules.command(short_help="Create or update a schedule.")
@click.argument("schedule_id")
@click.argument("workflow_id")
@click.option("--cron", required=True, metavar="EXPR", help="Five-field cron expression, e.g. '0 3 * * *'.")
@click.option("--timezone", "zone", default="UTC", show_default=True, help="IANA zone the cron is read in.")
@click.option("--data", "data_json", metavar="JSON", help="The data of each started instance, as JSON.")
@click.option("--version", "version", type=int, help="The version to start (default: the latest).")
@click.option(
    "--catch-up",
    type=click.Choice(["none", "one", "all"]),
    default="one",
    show_default=True,
    help="Ticks missed while no worker ran: skip them, run the latest once, or run them all.",
)
@backend_options
def add(
    schedule_id: str,
    workflow_id: str,
    cron: str,
    zone: str,
    data_json: str | None,
    version: int | None,
    catch_up: str,
    backends: Backends,
) -> None:
    """Start WORKFLOW_ID at every tick of --cron, under SCHEDULE_ID (adding an existing id
    updates that schedule). With --app, WORKFLOW_ID is checked against your definitions."""
    data: Any = None
    if data_json is not None:
        try:
            data = json.loads(data_json)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not valid JSON: {error}", param_hint="--data") from error
    host = backends.host()
    schedule_workflow(
        host,
        schedule_id,
        workflow_id,
        cron=cron,
        data=data,
        zone=zone,
        version=version,
        catch_up=catch_up,
        check_registered=bool(backends.app),
    )
    click.echo(f"schedule {schedule_id} saved")


def _control(host: WorkflowHost, action: str, call: str, schedule_id: str) -> bool:
    """Apply a control to the schedule's instance; False when it was in that state already."""
    instance = schedule_instance(host, call, schedule_id)
    wanted = {"suspend": "runnable", "resume": "suspended", "terminate": None}[action]
    if wanted is not None and instance.status.value != wanted:
        return False
    apply_control(host, action, INSTANCE_PREFIX + schedule_id)
    return True


@schedules.command()
@click.argument("schedule_id")
@backend_options
def pause(schedule_id: str, backends: Backends) -> None:
    """Stop starting the ticks of SCHEDULE_ID until it is resumed."""
    done = _control(backends.host(), "suspend", "pause_schedule", schedule_id)
    click.echo(f"schedule {schedule_id} {'paused' if done else 'was paused already'}")


@schedules.command()
@click.argument("schedule_id")
@backend_options
def resume(schedule_id: str, backends: Backends) -> None:
    """Start the ticks of SCHEDULE_ID again (its catch-up decides about the missed ones)."""
    done = _control(backends.host(), "resume", "resume_schedule", schedule_id)
    click.echo(f"schedule {schedule_id} {'resumed' if done else 'was not paused'}")


@schedules.command()
@click.argument("schedule_id")
@backend_options
def delete(schedule_id: str, backends: Backends) -> None:
    """Remove SCHEDULE_ID; instances its ticks started go on."""
    _control(backends.host(), "terminate", "delete_schedule", schedule_id)
    click.echo(f"schedule {schedule_id} deleted")
