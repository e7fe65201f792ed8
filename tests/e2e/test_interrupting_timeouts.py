"""Timeouts that interrupt: an async step is cancelled at its deadline, a sync step sees
``context.cancellation`` and its late result is discarded; terminate and suspend set it too."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from liteflow.core import (
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    StepTimeoutError,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    WorkflowStep,
    configure_workflow_host,
)

DEADLINE = timedelta(milliseconds=300)


class Seen:
    events: ClassVar[list[str]] = []
    entered = threading.Event()


class SlowAsync(StepBody):
    async def run(self, context: StepExecutionContext) -> ExecutionResult:
        Seen.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            Seen.events.append(f"cancelled at {time.monotonic():.3f}")
            raise
        Seen.events.append("finished")
        return ExecutionResult.next()


class SlowSync(StepBody):
    def __init__(self) -> None:
        self.output = "unset"

    def run(self, context: StepExecutionContext) -> None:
        Seen.entered.set()
        noticed = context.cancellation.wait(30)
        Seen.events.append(f"flag {noticed}")
        self.output = "late result"


def late(context: StepExecutionContext) -> None:
    context.workflow.data["path"] = "timed out"


def on_time(context: StepExecutionContext) -> None:
    context.workflow.data["path"] = "on time"


def flow(body: type[StepBody], name: str) -> Workflow:
    class Built(Workflow):
        def id(self) -> str:
            return name

        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(body).output("result", lambda step: getattr(step, "output", None)).timeout(
                DEADLINE, outcome="late"
            ).when("late").do(lambda then: then.start_with(late)).when(None).do(lambda then: then.start_with(on_time))

    return Built()


def reset() -> None:
    Seen.events, Seen.entered = [], threading.Event()


def test_an_async_step_is_cancelled_at_its_deadline_and_takes_the_timeout_path() -> None:
    reset()
    with configure_workflow_host() as host:
        host.register_workflow(flow(SlowAsync, "AsyncFlow"))
        started = time.monotonic()
        instance = host.wait_for_workflow(host.start_workflow("AsyncFlow", data={}), timeout=10)
        took = time.monotonic() - started
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data == {"path": "timed out"}
    assert len(Seen.events) == 1 and Seen.events[0].startswith("cancelled at")
    cancelled_after = float(Seen.events[0].split()[-1]) - started
    # Within about 100 ms of the deadline; generous bounds for a loaded machine.
    assert DEADLINE.total_seconds() <= cancelled_after < DEADLINE.total_seconds() + 1.0, cancelled_after
    assert took < DEADLINE.total_seconds() + 2.0, took


def test_a_sync_step_sees_the_flag_at_its_deadline_and_its_late_result_is_discarded() -> None:
    reset()
    with configure_workflow_host() as host:
        host.register_workflow(flow(SlowSync, "SyncFlow"))
        started = time.monotonic()
        instance = host.wait_for_workflow(host.start_workflow("SyncFlow", data={}), timeout=10)
    assert Seen.events == ["flag True"]
    assert time.monotonic() - started < DEADLINE.total_seconds() + 2.0
    assert instance.data == {"path": "timed out"}  # no "result": the late output was discarded


def test_without_an_outcome_the_interrupted_step_fails_with_step_timeout_error() -> None:
    reset()

    class Failing(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(SlowAsync).timeout(DEADLINE).on_error(WorkflowStep.TERMINATE)

    with configure_workflow_host() as host:
        host.register_workflow(Failing())
        workflow_id = host.start_workflow("Failing", data={})
        instance = host.wait_for_workflow(workflow_id, timeout=10)
        errors = host.get_workflow_errors(workflow_id)
    assert instance.status is WorkflowStatus.TERMINATED
    assert [e.error_type.rsplit(".", 1)[-1] for e in errors] == [StepTimeoutError.__name__]


def test_a_step_that_finishes_in_time_is_not_disturbed() -> None:
    class Quick(StepBody):
        async def run(self, context: StepExecutionContext) -> Any:
            await asyncio.sleep(0.01)
            self.output = "done"

    with configure_workflow_host() as host:
        host.register_workflow(flow(Quick, "QuickFlow"))
        instance = host.wait_for_workflow(host.start_workflow("QuickFlow", data={}), timeout=10)
    assert instance.data == {"result": "done", "path": "on time"}


@pytest.mark.parametrize(("control", "status"), [("terminate", "terminated"), ("suspend", "suspended")])
def test_terminate_and_suspend_set_the_flag_of_the_running_step(control: str, status: str) -> None:
    reset()

    class Long(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(SlowSync).then(on_time)

    with configure_workflow_host() as host:
        host.register_workflow(Long())
        workflow_id = host.start_workflow("Long", data={})
        assert Seen.entered.wait(10)
        getattr(host, f"{control}_workflow")(workflow_id)  # recorded: the step is running
        deadline = time.monotonic() + 10
        while (instance := host.get_workflow_instance(workflow_id)).status.value != status:
            assert time.monotonic() < deadline, instance.status
            time.sleep(0.01)  # polling a condition with a deadline
    assert Seen.events == ["flag True"]
    assert "path" not in instance.data
