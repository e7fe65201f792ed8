"""``liteflow tasks``: the user tasks waiting for people, and answering them."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from liteflow.core import UserAction

from ._app import Backends, backend_options, cli, json_option
from ._render import console, print_json


@cli.group(short_help="List and answer user tasks.")
def tasks() -> None:
    """User tasks: steps that wait for a person to choose one of their options."""


def _record(action: UserAction) -> dict[str, Any]:
    return {
        "key": action.key,
        "workflow_id": action.workflow_id,
        "prompt": action.prompt,
        "assigned_to": action.assigned_to,
        "options": [{"value": value, "label": label} for value, label in action.options.items()],
        "escalated": action.escalated,
    }


@tasks.command("list", short_help="User tasks waiting for an answer.")
@click.option("--workflow-id", metavar="ID", help="Only the tasks of this workflow instance.")
@click.option("--assigned-to", metavar="USER", help="Only the tasks assigned to this user.")
@json_option
@backend_options
def list_tasks(workflow_id: str | None, assigned_to: str | None, as_json: bool, backends: Backends) -> None:
    """Every user task that waits for an answer, with its key (what `liteflow tasks answer` takes)."""
    actions = backends.host().get_open_user_actions(instance_id=workflow_id, assigned_to=assigned_to)
    if as_json:
        print_json([_record(action) for action in actions])
        return
    table = Table("key", "prompt", "assigned to", "options", "escalated")
    for action in actions:
        options = ", ".join(f"{value!s}: {label}" for value, label in action.options.items())
        cells = (action.key, action.prompt, action.assigned_to or "anyone", options, "yes" if action.escalated else "")
        table.add_row(*(Text(cell) for cell in cells))  # stored text is shown as is, never as markup
    console().print(table)
    click.echo(f"{len(actions)} open user task(s)", err=True)


@tasks.command("answer", short_help="Answer a user task.")
@click.argument("key")
@click.argument("value")
@click.option("--user", required=True, metavar="USER", help="Who answers (must be the assignee, if there is one).")
@click.option("--json-value", is_flag=True, help="Read VALUE as JSON (for options that are not strings).")
@backend_options
def answer(key: str, value: str, user: str, json_value: bool, backends: Backends) -> None:
    """Answer the user task KEY with the option VALUE, as USER. Running workers apply the answer
    (through the store, at their next poll if they share no queue with this command)."""
    chosen: Any = value
    if json_value:
        try:
            chosen = json.loads(value)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="VALUE") from error
    if not backends.host().publish_user_action(key, user, chosen):
        raise click.ClickException(f"user task {key} no longer waits for an answer")
    click.echo(f"answered {key}: {chosen!r} by {user}")
