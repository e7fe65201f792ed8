"""Cancellation reaches sub-workflows: a parent's step that stops waiting for its child (the parent
is terminated or ends, a cancel condition, a failed saga or a timeout) terminates the child and its
own children, unless the step says ``on_parent_end="abandon"``."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    PointerStatus,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.testing import WorkflowTestHost


def workflow(name: str, build: Any) -> Workflow:
    class Built(Workflow):
        def id(self) -> str:
            return name

        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    return Built()


def noop(context: StepExecutionContext) -> None:
    pass


def fail(context: StepExecutionContext) -> None:
    raise RuntimeError("payment refused")


def set_stop(context: StepExecutionContext) -> None:
    context.workflow.data["stop"] = True


GRANDCHILD = workflow("Grandchild", lambda b: b.start_with(noop).wait_for("never", lambda d, c: "k"))
CHILD = workflow("Child", lambda b: b.start_with(noop).sub_workflow("Grandchild", lambda d, c: {}))


def statuses(host: WorkflowHost) -> dict[str, WorkflowStatus]:
    return {i.workflow_definition_id: i.status for i in host.query_workflows() if i.parent_workflow_id}


def test_terminating_a_parent_terminates_its_children_and_theirs() -> None:
    parent = workflow("Parent", lambda b: b.start_with(noop).sub_workflow("Child", lambda d, c: {}))
    test = WorkflowTestHost(parent, CHILD, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    assert statuses(test.host) == {"Child": WorkflowStatus.RUNNABLE, "Grandchild": WorkflowStatus.RUNNABLE}
    test.host.terminate_workflow(parent_id)
    test.run_until_idle()
    assert test.instance(parent_id).status is WorkflowStatus.TERMINATED
    assert statuses(test.host) == {"Child": WorkflowStatus.TERMINATED, "Grandchild": WorkflowStatus.TERMINATED}


def test_abandon_leaves_the_child_running() -> None:
    parent = workflow(
        "Parent", lambda b: b.start_with(noop).sub_workflow("Grandchild", lambda d, c: {}, on_parent_end="abandon")
    )
    test = WorkflowTestHost(parent, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    test.host.terminate_workflow(parent_id)
    test.run_until_idle()
    assert statuses(test.host) == {"Grandchild": WorkflowStatus.RUNNABLE}


def test_a_bad_on_parent_end_is_refused() -> None:
    with pytest.raises(BuilderError, match="on_parent_end must be 'terminate' or 'abandon', got 'keep'"):
        WorkflowTestHost(workflow("Parent", lambda b: b.start_with(noop).sub_workflow("X", on_parent_end="keep")))


def test_a_cancel_condition_on_the_step_terminates_the_child() -> None:
    parent = workflow(
        "Parent",
        lambda b: (
            b.start_with(noop)
            .parallel()
            .do(
                lambda p: (
                    p.start_with(noop)
                    .sub_workflow("Child", lambda d, c: {})
                    .cancel_condition(lambda d, c: d.get("stop", False), proceed_after_cancel=True)
                )
            )
            .do(lambda p: p.start_with(noop).delay(lambda d, c: timedelta(minutes=1)).then(set_stop))
            .join()
        ),
    )
    test = WorkflowTestHost(parent, CHILD, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    assert test.run_to_completion(parent_id).status is WorkflowStatus.COMPLETE
    assert statuses(test.host) == {"Child": WorkflowStatus.TERMINATED, "Grandchild": WorkflowStatus.TERMINATED}


def test_a_failed_saga_terminates_the_child_it_was_waiting_for() -> None:
    parent = workflow(
        "Parent",
        lambda b: (
            b.start_with(noop)
            .saga(
                lambda s: (
                    s.start_with(noop)
                    .parallel()
                    .do(lambda p: p.start_with(noop).sub_workflow("Child", lambda d, c: {}))
                    .do(lambda p: p.start_with(noop).delay(lambda d, c: timedelta(minutes=1)).then(fail))
                    .join()
                )
            )
            .then(noop)
        ),
    )
    test = WorkflowTestHost(parent, CHILD, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    test.advance(timedelta(minutes=2))
    assert test.instance(parent_id).status is WorkflowStatus.COMPLETE  # the saga compensated and went on
    assert statuses(test.host) == {"Child": WorkflowStatus.TERMINATED, "Grandchild": WorkflowStatus.TERMINATED}


def test_a_timeout_of_the_step_terminates_the_child() -> None:
    parent = workflow(
        "Parent",
        lambda b: (
            b.start_with(noop)
            .sub_workflow("Grandchild", lambda d, c: {})
            .timeout(timedelta(minutes=5), outcome="late")
            .then(noop)
        ),
    )
    test = WorkflowTestHost(parent, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    test.advance(timedelta(minutes=6))
    assert test.instance(parent_id).status is WorkflowStatus.COMPLETE
    assert statuses(test.host) == {"Grandchild": WorkflowStatus.TERMINATED}


def test_a_parent_ending_through_end_workflow_terminates_its_child() -> None:
    parent = workflow(
        "Parent",
        lambda b: (
            b.start_with(noop)
            .parallel()
            .do(lambda p: p.start_with(noop).sub_workflow("Grandchild", lambda d, c: {}))
            .do(lambda p: p.start_with(noop).wait_for("done", lambda d, c: "k").end_workflow())
            .join()
        ),
    )
    test = WorkflowTestHost(parent, GRANDCHILD)
    parent_id = test.start_workflow("Parent", data={})
    test.publish_event("done", "k")
    assert test.instance(parent_id).status is WorkflowStatus.COMPLETE
    assert statuses(test.host) == {"Grandchild": WorkflowStatus.TERMINATED}


def test_on_a_started_memory_host_terminating_a_parent_ends_the_whole_tree() -> None:
    parent = workflow("Parent", lambda b: b.start_with(noop).sub_workflow("Child", lambda d, c: {}))
    with configure_workflow_host() as host:
        for definition in (parent, CHILD, GRANDCHILD):
            host.register_workflow(definition)
        parent_id = host.start_workflow("Parent", data={})
        grandchild = _wait_for_instance(host, "Grandchild")
        host.terminate_workflow(parent_id)
        assert host.wait_for_workflow(grandchild, timeout=10).status is WorkflowStatus.TERMINATED
        [child] = host.query_workflows(workflow_id="Child")
        assert host.wait_for_workflow(child.id, timeout=10).status is WorkflowStatus.TERMINATED


def _wait_for_instance(host: WorkflowHost, definition: str) -> str:
    """The id of the first instance of ``definition``, once it waits for its event."""
    deadline = time.monotonic() + 10
    while not (found := host.query_workflows(workflow_id=definition)):
        assert time.monotonic() < deadline, f"no {definition} instance appeared"
        time.sleep(0.01)  # polling a condition with a deadline
    instance_id = found[0].id
    while host.get_workflow_instance(instance_id).execution_pointers[-1].status is not PointerStatus.WAITING_FOR_EVENT:
        assert time.monotonic() < deadline, f"{definition} never reached its wait"
        time.sleep(0.01)
    return instance_id


def test_on_parent_end_survives_load_and_export() -> None:
    from liteflow.core import export_workflow, load_workflow

    document: dict[str, Any] = {
        "id": "Parent",
        "steps": [
            {"id": "kept", "type": "sub_workflow", "workflow_id": "Grandchild", "on_parent_end": "abandon"},
            {"id": "ended", "type": "sub_workflow", "workflow_id": "Grandchild"},
        ],
    }
    document["steps"][0]["next"] = "ended"
    loaded = load_workflow(document)
    subs = [s for s in export_workflow(loaded)["steps"] if s.get("type") == "sub_workflow"]
    assert [s.get("on_parent_end") for s in subs] == ["abandon", None]
    test = WorkflowTestHost(loaded, GRANDCHILD)
    test.host.terminate_workflow(test.start_workflow("Parent", data={}))
    test.run_until_idle()
    assert sorted(i.status.value for i in test.host.query_workflows(workflow_id="Grandchild")) == ["runnable"]
    with pytest.raises(Exception, match="on_parent_end"):
        load_workflow({**document, "steps": [{**document["steps"][0], "on_parent_end": "keep"}, document["steps"][1]]})
