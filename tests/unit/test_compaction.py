"""Compaction on its own: the record format of the compacted history, and records written before it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from liteflow.core import (
    ExecutionPointer,
    PointerStatus,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    WorkflowStep,
)
from liteflow.core._executor import WorkflowExecutor
from liteflow.core._models import CompactedHistory, StepTally
from liteflow.core._records import instance_from_record, instance_to_record
from liteflow.core._steps import WorkflowDefinition

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
executor = WorkflowExecutor(  # no async steps here
    retry_interval=timedelta(seconds=10), default_error_behavior=WorkflowStep.RETRY, run_awaitable=lambda _: None
)


def define(workflow: Workflow) -> WorkflowDefinition:
    builder = WorkflowBuilder()
    workflow.build(builder)
    return builder.build(workflow.id(), workflow.version())


def new_instance(definition: WorkflowDefinition, data: Any) -> WorkflowInstance:
    return WorkflowInstance(
        workflow_definition_id=definition.id,
        version=definition.version,
        data=data,
        create_time=T0,
        next_execution=T0,
        execution_pointers=[ExecutionPointer(step_id=0)],
    )


def run_until_idle(instance: WorkflowInstance, definition: WorkflowDefinition) -> None:
    for _ in range(100):
        if instance.status is not WorkflowStatus.RUNNABLE or instance.next_execution is None:
            return
        executor.execute(instance, definition, T0)
    raise AssertionError("workflow did not settle")


class Count(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["i"] += 1


class Loop(Workflow):
    """step 0 start, step 1 the while, step 2 its block"""

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: None).while_(lambda data, context: data["i"] < data["n"]).do(
            lambda block: block.start_with(Count)
        )


def test_the_compacted_history_is_stored_as_plain_json_and_read_back() -> None:
    instance = new_instance(define(Loop()), {"i": 0, "n": 0})
    assert "compacted" not in instance_to_record(instance), "absent until a loop folds a round"
    statuses = {"complete": 2, "compensated": 1}
    tally = StepTally(runs=3, statuses=statuses, failed_attempts=4, first_start=T0, last_end=T0)
    instance.compacted = CompactedHistory(pointers=3, steps={2: tally}, consumed_events=["e1"])
    record = json.loads(json.dumps(instance_to_record(instance)))
    assert record["compacted"] == {
        "pointers": 3,
        "steps": {
            "2": {
                "runs": 3,
                "statuses": {"complete": 2, "compensated": 1},
                "failed_attempts": 4,
                "first_start": T0.isoformat(),
                "last_end": T0.isoformat(),
            }
        },
        "consumed_events": ["e1"],
    }
    assert instance_from_record(record).compacted == instance.compacted


def test_a_record_written_before_compaction_loads_and_its_loop_folds_at_the_next_round() -> None:
    definition = define(Loop())
    instance = new_instance(definition, {"i": 3, "n": 5})
    # What an older engine left after three rounds: every round's pointer still there.
    start = instance.execution_pointers[0]
    start.status, start.active, start.start_time, start.end_time = PointerStatus.COMPLETE, False, T0, T0
    loop = ExecutionPointer(step_id=1, predecessor_id=start.id, start_time=T0)
    rounds = [
        ExecutionPointer(
            step_id=2,
            active=False,
            status=PointerStatus.COMPLETE,
            start_time=T0 + timedelta(seconds=n),
            end_time=T0 + timedelta(seconds=n),
            predecessor_id=loop.id,
            scope=[loop.id],
        )
        for n in range(3)
    ]
    loop.children = [p.id for p in rounds]
    instance.execution_pointers += [loop, *rounds]
    record = instance_to_record(instance)
    assert "compacted" not in record
    old = instance_from_record(record)
    assert old.compacted is None and len(old.execution_pointers) == 5

    run_until_idle(old, definition)
    assert old.status is WorkflowStatus.COMPLETE and old.data["i"] == 5
    assert old.compacted is not None
    assert old.compacted.steps[2].runs == 4 and old.compacted.steps[2].first_start == T0
    assert [p.step_id for p in old.execution_pointers] == [0, 1, 2], "the last round stays"
