"""Long loops keep a bounded instance (issue 14): a loop folds its finished rounds into the
instance's compacted history, and what events, compensation, errors and repair need is kept."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    ErrorBehavior,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
)
from liteflow.core._records import instance_to_record
from liteflow.testing import WorkflowTestHost

failing_round: dict[int, int] = {}
"""Round -> how many more times Count raises in that round."""


class Count(StepBody):
    def __init__(self) -> None:
        self.value = 0
        self.result = 0

    def run(self, context: StepExecutionContext) -> None:
        if failing_round.get(self.value, 0) > 0:
            failing_round[self.value] -= 1
            raise RuntimeError(f"round {self.value} failed")
        self.result = self.value + 1


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Note(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["trail"].append(context.step.name)


class Loop(Workflow):
    """noop, while i < n: count (retried after 1 s when it fails), then noop"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .while_(lambda data, context: data["i"] < data["n"])
            .do(
                lambda block: (
                    block.start_with(Count)
                    .name("count")
                    .input("value", lambda data, context: data["i"])
                    .output("i", lambda step: step.result)
                    .on_error(ErrorBehavior.RETRY, timedelta(seconds=1))
                )
            )
            .then(Noop)
        )


class EachInSequence(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .for_each(lambda data, context: range(data["n"]), run_parallel=False)
            .do(
                lambda block: (
                    block.start_with(Count)
                    .name("count")
                    .input("value", lambda data, context: context.item)
                    .output("last", lambda step: step.result)
                )
            )
            .then(Noop)
        )


class EachInParallel(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .for_each(lambda data, context: range(data["n"]), run_parallel=True)
            .do(lambda block: block.start_with(Count).name("count"))
            .then(Noop)
        )


@pytest.fixture(autouse=True)
def _no_failures() -> Iterator[None]:
    failing_round.clear()
    yield
    failing_round.clear()


def stored_bytes(test: WorkflowTestHost, workflow_id: str, database: Path | None) -> int:
    """The size of the stored record: the row itself on SQLite, the JSON the stores write otherwise."""
    if database is None:
        return len(json.dumps(instance_to_record(test.instance(workflow_id))))
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT length(record) FROM workflow WHERE id = ?", (workflow_id,)).fetchone()
    return int(row[0])


def run_sizes(
    test: WorkflowTestHost, workflow: str, sizes: tuple[int, ...], database: Path | None
) -> list[tuple[WorkflowInstance, int]]:
    found = []
    for n in sizes:
        workflow_id = test.start_workflow(workflow, data={"i": 0, "n": n})
        instance = test.run_to_completion(workflow_id)
        assert instance.status is WorkflowStatus.COMPLETE
        found.append((instance, stored_bytes(test, workflow_id, database)))
    return found


def assert_bounded(small: tuple[WorkflowInstance, int], large: tuple[WorkflowInstance, int]) -> None:
    """The same pointers and (up to the digits of the counts) the same bytes at 1,000 and 10,000."""
    (few, few_bytes), (many, many_bytes) = small, large
    assert len(many.execution_pointers) == len(few.execution_pointers) <= 5
    assert many_bytes - few_bytes < 64, (few_bytes, many_bytes)
    assert many_bytes < 4_000


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    return tmp_path / "loops.db" if request.param == "sqlite" else None


def test_a_while_loop_of_ten_thousand_rounds_keeps_a_bounded_record(store: Path | None) -> None:
    test = WorkflowTestHost(Loop(), persistence_service=None if store is None else f"sqlite:///{store}")
    small, large = run_sizes(test, "Loop", (1_000, 10_000), store)
    assert_bounded(small, large)
    instance = large[0]
    assert instance.data["i"] == 10_000
    assert instance.compacted is not None
    count = next(step_id for step_id, tally in instance.compacted.steps.items())
    tally = instance.compacted.steps[count]
    assert tally.runs == 9_999 and tally.statuses == {"complete": 9_999}, "the last round stays as pointers"
    assert [p.step_id for p in instance.execution_pointers].count(count) == 1


def test_a_for_each_over_ten_thousand_items_keeps_a_bounded_record() -> None:
    test = WorkflowTestHost(EachInSequence(), EachInParallel())
    assert_bounded(*run_sizes(test, "EachInSequence", (1_000, 10_000), None))
    small, large = run_sizes(test, "EachInParallel", (1_000, 10_000), None)
    assert_bounded(small, large)
    assert large[0].compacted is not None and large[0].compacted.pointers == 9_999
    last = [p for p in large[0].execution_pointers if p.context_item is not None]
    assert [p.context_item for p in last] == [9_999], "the last item's branch stays"


def test_a_for_each_in_sequence_keeps_a_bounded_record_on_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "each.db"
    test = WorkflowTestHost(EachInSequence(), persistence_service=f"sqlite:///{database}")
    small, large = run_sizes(test, "EachInSequence", (200, 2_000), database)
    assert_bounded(small, large)
    assert large[0].data["last"] == 2_000


def test_an_error_in_a_folded_round_is_still_reported() -> None:
    failing_round[7] = 2  # round 7 fails twice, then succeeds on its third attempt
    test = WorkflowTestHost(Loop())
    workflow_id = test.start_workflow("Loop", data={"i": 0, "n": 50})
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE and instance.data["i"] == 50
    errors = test.errors(workflow_id)
    assert [(e.message, e.attempt) for e in errors] == [("round 7 failed", 1), ("round 7 failed", 2)]
    assert instance.pointer(errors[0].execution_pointer_id) is None, "its pointer was folded"
    assert instance.compacted is not None
    assert instance.compacted.steps[errors[0].step_id].failed_attempts == 2


class Undo(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["undone"] += 1


class Boom(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        raise RuntimeError("after the loop")


class SagaAroundLoop(Workflow):
    """saga { while i < n: count (undone by undo) ; boom }, then note"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .saga(
                lambda saga: (
                    saga.start_with(Noop)
                    .while_(lambda data, context: data["i"] < data["n"])
                    .do(
                        lambda block: (
                            block.start_with(Count)
                            .input("value", lambda data, context: data["i"])
                            .output("i", lambda step: step.result)
                            .compensate_with(Undo)
                        )
                    )
                    .then(Boom)
                )
            )
            .then(Note)
            .name("after")
        )


def test_a_saga_around_a_loop_compensates_every_round() -> None:
    test = WorkflowTestHost(SagaAroundLoop())
    workflow_id = test.start_workflow("SagaAroundLoop", data={"i": 0, "n": 30, "undone": 0, "trail": []})
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["undone"] == 30, "each round's count is undone once"
    assert instance.data["trail"] == ["after"]
    assert [e.message for e in test.errors(workflow_id)] == ["after the loop"]


class Received(StepBody):
    def __init__(self) -> None:
        self.got: Any = None

    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["got"].append(self.got)


class WaitsInLoop(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .while_(lambda data, context: len(data["got"]) < data["n"])
            .do(
                lambda block: (
                    block.wait_for("tick", lambda data, context: "k")
                    .output("last", lambda step: step.event_data)
                    .then(Received)
                    .input("got", lambda data, context: data["last"])
                )
            )
            .then(Noop)
        )


def test_a_wait_in_a_loop_gets_each_event_once_in_order() -> None:
    test = WorkflowTestHost(WaitsInLoop())
    workflow_id = test.start_workflow("WaitsInLoop", data={"got": [], "n": 6, "last": None})
    test.publish_event("tick", "k", 0)  # one at a time: each reaches the round waiting now
    test.publish_event("tick", "k", 1)
    for value in (2, 3, 4, 5, 6):  # together: the later rounds find them already published
        test.host.publish_event("tick", "k", value)
    test.run_until_idle()
    instance = test.instance(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["got"] == [0, 1, 2, 3, 4, 5], "an event a folded round received is never given again"
    assert instance.compacted is not None and len(instance.compacted.consumed_events) == 5


class EndsBadly(Workflow):
    """noop, while i < n: count, then note "after" (terminates the workflow while broken)"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .while_(lambda data, context: data["i"] < data["n"])
            .do(
                lambda block: (
                    block.start_with(Count)
                    .name("count")
                    .input("value", lambda data, context: data["i"])
                    .output("i", lambda step: step.result)
                )
            )
            .then(Count)
            .name("after")
            .input("value", lambda data, context: data["i"])
            .on_error(ErrorBehavior.TERMINATE)
        )


def test_retry_from_a_step_of_a_compacted_loop_reruns_its_last_round() -> None:
    failing_round[100] = 1  # the step after the loop, which sees i == 100
    test = WorkflowTestHost(EndsBadly())
    workflow_id = test.start_workflow("EndsBadly", data={"i": 0, "n": 100})
    assert test.instance(workflow_id).status is WorkflowStatus.TERMINATED
    test.host.retry_workflow(workflow_id, from_step="count")
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["i"] == 101, "the last round's count ran again (data is not rewound), then after"
    count = next(p.step_id for p in instance.execution_pointers if p.step_id not in (0, 1) and p.scope)
    assert instance.compacted is not None and instance.compacted.steps[count].runs == 99


def test_retry_and_fork_of_a_workflow_stopped_inside_a_long_loop() -> None:
    failing_round[60] = 1
    test = WorkflowTestHost(SuspendingLoop())
    workflow_id = test.start_workflow("SuspendingLoop", data={"i": 0, "n": 100})
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    assert test.instance(workflow_id).data["i"] == 60
    fork = test.run_to_completion(test.host.fork_workflow(workflow_id))
    assert fork.status is WorkflowStatus.COMPLETE and fork.data["i"] == 100, "the copy went on from i == 60"
    assert fork.compacted is not None and fork.compacted.pointers == 39
    test.host.retry_workflow(workflow_id)
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE and instance.data["i"] == 100
    assert [e.message for e in test.errors(workflow_id)] == ["round 60 failed"]


class SuspendingLoop(Loop):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Noop)
            .while_(lambda data, context: data["i"] < data["n"])
            .do(
                lambda block: (
                    block.start_with(Count)
                    .name("count")
                    .input("value", lambda data, context: data["i"])
                    .output("i", lambda step: step.result)
                    .on_error(ErrorBehavior.SUSPEND)
                )
            )
            .then(Noop)
        )
