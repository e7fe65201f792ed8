"""host.retry_workflow and host.fork_workflow on the in-memory host (a test host with a manual clock)."""

from __future__ import annotations

from typing import Any

import pytest

from liteflow.core import (
    ErrorBehavior,
    InvalidArgumentError,
    InvalidOperationError,
    PointerStatus,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from liteflow.testing import WorkflowTestHost

broken = {"Charge": 0, "Ship": 0}
"""How many more times each failing step raises."""


def _note(context: StepExecutionContext, label: str) -> None:
    context.workflow.data["trail"].append(label)
    context.workflow.data["keys"].append(context.idempotency_key)


class Reserve(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        _note(context, "reserve")


class Charge(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        if broken["Charge"] > 0:
            broken["Charge"] -= 1
            raise RuntimeError("card declined")
        _note(context, "charge" if context.item is None else f"charge{context.item}")


class Ship(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        if broken["Ship"] > 0:
            broken["Ship"] -= 1
            raise RuntimeError("no truck")
        _note(context, "ship")


class Order(Workflow):
    """reserve -> charge (suspends the workflow when it fails) -> ship"""

    behavior: Any = ErrorBehavior.SUSPEND

    def build(self, builder: WorkflowBuilder) -> None:
        (builder.start_with(Reserve).name("reserve").then(Charge).on_error(self.behavior).then(Ship).name("ship"))


class StrictOrder(Order):
    behavior = ErrorBehavior.TERMINATE


class Waiting(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Reserve).wait_for("paid", lambda data, context: "o1").then(Ship)


class Looping(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Reserve)
            .for_each(lambda data, context: [1, 2])
            .do(lambda b: b.start_with(Charge).on_error(ErrorBehavior.SUSPEND))
            .then(Ship)
            .on_error(ErrorBehavior.SUSPEND)
        )


class Branch(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        _note(context, type(self).__name__.lower())


class LeftOne(Branch):
    pass


class LeftTwo(Branch):
    pass


class Forked(Workflow):
    """reserve, then in parallel (left-one -> left-two) and (charge), then ship"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Reserve)
            .parallel()
            .do(lambda branch: branch.start_with(LeftOne).then(LeftTwo))
            .do(lambda branch: branch.start_with(Charge).on_error(ErrorBehavior.SUSPEND))
            .join()
            .then(Ship)
        )


class Unreserve(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        _note(context, "unreserve")


class Refund(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        _note(context, "refund")


class Undoable(Workflow):
    """reserve (undone by unreserve) -> charge (undone by refund) -> ship, which suspends when it fails"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Reserve)
            .compensate_with(Unreserve)
            .then(Charge)
            .compensate_with(Refund)
            .then(Ship)
            .on_error(ErrorBehavior.SUSPEND)
        )


@pytest.fixture
def test_host() -> WorkflowTestHost:
    broken.update(Charge=0, Ship=0)
    return WorkflowTestHost(Order(), Waiting(), Looping(), Forked(), Undoable())


def new_data() -> dict[str, list[str]]:
    return {"trail": [], "keys": []}


def test_retry_runs_the_failed_step_of_a_suspended_workflow_again(test_host: WorkflowTestHost) -> None:
    broken["Charge"] = 1
    workflow_id = test_host.start_workflow("Order", data=new_data())
    assert test_host.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    test_host.host.retry_workflow(workflow_id)
    instance = test_host.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["trail"] == ["reserve", "charge", "ship"]  # reserve did not run again
    assert [e.message for e in test_host.errors(workflow_id)] == ["card declined"]


def test_retry_from_an_earlier_step_drops_what_followed_and_runs_it_with_a_new_key(
    test_host: WorkflowTestHost,
) -> None:
    broken["Charge"] = 1
    workflow_id = test_host.start_workflow("Order", data=new_data())
    first_key = test_host.instance(workflow_id).data["keys"][0]
    test_host.host.retry_workflow(workflow_id, from_step="reserve")
    instance = test_host.instance(workflow_id)
    assert [p.step_id for p in instance.execution_pointers] == [0], "the runs after reserve are dropped"
    instance = test_host.run_to_completion(workflow_id)
    assert instance.data["trail"] == ["reserve", "reserve", "charge", "ship"]
    assert instance.data["keys"][1] != first_key, "a fresh run gets a fresh idempotency key"
    assert all(p.status is PointerStatus.COMPLETE for p in instance.execution_pointers)


@pytest.mark.parametrize("step", [1, "1", "Charge"])
def test_a_step_is_named_by_number_or_class_name(test_host: WorkflowTestHost, step: int | str) -> None:
    broken["Charge"] = 1
    workflow_id = test_host.start_workflow("Order", data=new_data())
    test_host.host.retry_workflow(workflow_id, from_step=step)
    assert test_host.run_to_completion(workflow_id).data["trail"] == ["reserve", "charge", "ship"]


def test_retry_of_a_workflow_terminated_by_its_failed_step() -> None:
    broken["Charge"] = 1
    test_host = WorkflowTestHost(StrictOrder())
    workflow_id = test_host.start_workflow("StrictOrder", data=new_data())
    assert test_host.instance(workflow_id).status is WorkflowStatus.TERMINATED
    test_host.host.retry_workflow(workflow_id)
    instance = test_host.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.complete_time is not None
    assert instance.data["trail"] == ["reserve", "charge", "ship"]


def test_retry_of_a_workflow_terminated_while_waiting_waits_again(test_host: WorkflowTestHost) -> None:
    workflow_id = test_host.start_workflow("Waiting", data=new_data())
    test_host.host.terminate_workflow(workflow_id)
    assert test_host.instance(workflow_id).status is WorkflowStatus.TERMINATED
    test_host.host.retry_workflow(workflow_id)
    test_host.run_until_idle()
    instance = test_host.instance(workflow_id)
    assert instance.status is WorkflowStatus.RUNNABLE
    assert any(p.status is PointerStatus.WAITING_FOR_EVENT for p in instance.execution_pointers)
    test_host.publish_event("paid", "o1")
    assert test_host.run_to_completion(workflow_id).data["trail"] == ["reserve", "ship"]


def test_retry_inside_a_for_each_reruns_that_branch_and_finishes_the_loop(test_host: WorkflowTestHost) -> None:
    broken["Charge"] = 1
    workflow_id = test_host.start_workflow("Looping", data=new_data())
    assert test_host.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    test_host.host.retry_workflow(workflow_id)
    instance = test_host.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["trail"] == ["reserve", "charge1", "charge2", "ship"]


def test_retry_from_a_step_inside_a_for_each_reruns_its_latest_branch_and_what_followed(
    test_host: WorkflowTestHost,
) -> None:
    broken["Ship"] = 1
    workflow_id = test_host.start_workflow("Looping", data=new_data())
    assert test_host.instance(workflow_id).data["trail"] == ["reserve", "charge1", "charge2"]
    test_host.host.retry_workflow(workflow_id, from_step="Charge")
    instance = test_host.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["trail"] == ["reserve", "charge1", "charge2", "charge2", "ship"]


def test_retry_refuses_what_it_cannot_do(test_host: WorkflowTestHost) -> None:
    with pytest.raises(WorkflowNotFoundError):
        test_host.host.retry_workflow("no-such-id")
    done = test_host.start_workflow("Order", data=new_data())
    with pytest.raises(InvalidOperationError, match="complete"):
        test_host.host.retry_workflow(done)
    waiting = test_host.start_workflow("Waiting", data=new_data())
    with pytest.raises(InvalidOperationError, match="runnable.*suspend it first"):
        test_host.host.retry_workflow(waiting)
    broken["Charge"] = 1
    failed = test_host.start_workflow("Order", data=new_data())
    with pytest.raises(InvalidArgumentError, match="no step named 'refund'; its steps: Charge, reserve, ship"):
        test_host.host.retry_workflow(failed, from_step="refund")
    with pytest.raises(InvalidArgumentError, match="has no step 7"):
        test_host.host.retry_workflow(failed, from_step=7)
    with pytest.raises(InvalidOperationError, match="step 2 never ran"):
        test_host.host.retry_workflow(failed, from_step="ship")
    assert test_host.instance(failed).status is WorkflowStatus.SUSPENDED, "a refused retry changes nothing"


def test_fork_copies_the_data_into_a_new_instance_and_leaves_the_original(test_host: WorkflowTestHost) -> None:
    original_id = test_host.start_workflow("Order", data=new_data(), reference="order-7")
    before = test_host.instance(original_id)
    fork_id = test_host.host.fork_workflow(original_id, from_step="ship")
    fork = test_host.run_to_completion(fork_id)
    assert fork_id != original_id
    assert fork.status is WorkflowStatus.COMPLETE and fork.reference == "order-7"
    assert fork.data["trail"] == ["reserve", "charge", "ship", "ship"], "the copy starts at ship"
    after = test_host.instance(original_id)
    assert (after.revision, after.data) == (before.revision, before.data)
    from_start = test_host.run_to_completion(test_host.host.fork_workflow(original_id))
    assert from_start.data["trail"] == ["reserve", "charge", "ship", "reserve", "charge", "ship"]


def test_fork_starts_only_at_a_top_level_step(test_host: WorkflowTestHost) -> None:
    workflow_id = test_host.start_workflow("Looping", data=new_data())
    with pytest.raises(InvalidArgumentError, match="inside a container"):
        test_host.host.fork_workflow(workflow_id, from_step="Charge")


def test_retry_from_a_step_in_one_parallel_branch_leaves_the_other_branch_alone(test_host: WorkflowTestHost) -> None:
    broken["Charge"] = 1
    workflow_id = test_host.start_workflow("Forked", data=new_data())
    assert test_host.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    test_host.host.retry_workflow(workflow_id, from_step="Charge")
    instance = test_host.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert sorted(instance.data["trail"]) == ["charge", "leftone", "lefttwo", "reserve", "ship"], "each ran once"
    assert instance.data["trail"][-1] == "ship"


def test_retry_from_a_step_compensates_the_dropped_steps_only_when_asked(test_host: WorkflowTestHost) -> None:
    broken["Ship"] = 1
    quiet = test_host.start_workflow("Undoable", data=new_data())
    test_host.host.retry_workflow(quiet, from_step="Reserve")
    assert test_host.run_to_completion(quiet).data["trail"] == ["reserve", "charge", "reserve", "charge", "ship"]
    broken["Ship"] = 1
    undone = test_host.start_workflow("Undoable", data=new_data())
    assert test_host.instance(undone).status is WorkflowStatus.SUSPENDED
    test_host.host.retry_workflow(undone, from_step="Reserve", compensate=True)
    instance = test_host.run_to_completion(undone)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["trail"] == ["reserve", "charge", "refund", "unreserve", "reserve", "charge", "ship"]
    with pytest.raises(InvalidArgumentError, match="give from_step too"):
        test_host.host.retry_workflow(undone, compensate=True)
