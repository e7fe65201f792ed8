"""``liteflow tasks``: user tasks listed and answered through the real console script while a
``liteflow worker`` runs the workflow."""

from __future__ import annotations

import json

from polling import wait_until

from liteflow.core import WorkflowStatus

from . import cli_workflows
from .cli_harness import Backend, Worker


def test_a_user_task_is_listed_refused_to_the_wrong_user_and_answered(backend: Backend, worker: Worker) -> None:
    backend.host.register_workflow(cli_workflows.Refund())
    workflow_id = backend.start("Refund", {"manager": "alice"})

    def listed() -> list[dict[str, object]]:
        result = backend.run("tasks", "list", "--workflow-id", workflow_id, "--json")
        assert result.returncode == 0, result.stderr
        found: list[dict[str, object]] = json.loads(result.stdout)
        return found

    (task,) = wait_until(listed, "the user task to be listed")
    assert task["prompt"] == "Refund order?" and task["assigned_to"] == "alice"
    assert task["options"] == [{"value": "yes", "label": "Refund it"}, {"value": "no", "label": "Keep it"}]
    table = backend.run("tasks", "list", "--assigned-to", "alice")
    assert table.returncode == 0 and str(task["key"]) in table.stdout and "Refund it" in table.stdout
    assert str(task["key"]) not in backend.run("tasks", "list", "--assigned-to", "bob").stdout

    wrong_user = backend.run("tasks", "answer", str(task["key"]), "yes", "--user", "bob")
    assert wrong_user.returncode == 1 and "assigned to 'alice'" in wrong_user.stderr
    assert len(wrong_user.stderr.strip().splitlines()) == 1
    unknown = backend.run("tasks", "answer", str(task["key"]), "maybe", "--user", "alice")
    assert unknown.returncode == 1 and "no option 'maybe'" in unknown.stderr

    answered = backend.run("tasks", "answer", str(task["key"]), "yes", "--user", "alice")
    assert answered.returncode == 0, answered.stderr
    instance = backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert instance.data["trail"] == ["refunded"]
    again = backend.run("tasks", "answer", str(task["key"]), "no", "--user", "alice")
    assert again.returncode == 1 and "no longer waits" in again.stderr
    assert listed() == []
