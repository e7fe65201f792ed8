"""Controls, async steps and concurrency on a real, threaded host."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from blocking_steps import Gate

from liteflow.core import (
    ExecutionResult,
    InvalidOperationError,
    LifecycleEvent,
    LifecycleEventType,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    configure_workflow_host,
)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class LongStep(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Gate).then(Noop).then(Noop)


@pytest.mark.parametrize("action", ["suspend", "terminate"])
def test_controls_succeed_while_a_step_runs_and_apply_when_it_returns(action: str) -> None:
    Gate.reset()
    with configure_workflow_host() as host:
        host.register_workflow(LongStep())
        events: list[LifecycleEvent] = []
        host.on_lifecycle_event(events.append)
        workflow_id = host.start_workflow("LongStep")
        assert Gate.entered.wait(5)
        getattr(host, f"{action}_workflow")(workflow_id)  # returns at once, the step still runs
        assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
        Gate.opened.set()
        expected = WorkflowStatus.SUSPENDED if action == "suspend" else WorkflowStatus.TERMINATED
        deadline = time.monotonic() + 5
        while host.get_workflow_instance(workflow_id).status is not expected:
            assert time.monotonic() < deadline, "the control request was never applied"
            time.sleep(0.01)
        instance = host.get_workflow_instance(workflow_id)
        completed = [p for p in instance.execution_pointers if p.status.value == "complete"]
        assert len(completed) == 1, "the running step's result is kept; nothing after it ran"
        kind = LifecycleEventType.WORKFLOW_SUSPENDED if action == "suspend" else LifecycleEventType.WORKFLOW_TERMINATED
        assert kind in [e.type for e in events]
        if action == "suspend":
            host.resume_workflow(workflow_id)
            assert host.wait_for_workflow(workflow_id, 5).status is WorkflowStatus.COMPLETE
        else:
            with pytest.raises(InvalidOperationError):
                host.resume_workflow(workflow_id)


class AsyncNap(StepBody):
    async def run(self, context: StepExecutionContext) -> ExecutionResult:
        await asyncio.sleep(0.2)
        return ExecutionResult.outcome("napped")


class AsyncFlow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(AsyncNap).then(Noop)


def test_async_steps_run_beside_sync_ones_and_a_long_step_does_not_delay_others() -> None:
    Gate.reset()
    with configure_workflow_host(max_concurrent_workflows=3) as host:
        host.register_workflow(LongStep())
        host.register_workflow(AsyncFlow())
        blocked = host.start_workflow("LongStep")
        assert Gate.entered.wait(5)
        started = time.monotonic()
        nappers = [host.start_workflow("AsyncFlow") for _ in range(2)]
        for workflow_id in nappers:
            instance = host.wait_for_workflow(workflow_id, 5)
            assert instance.execution_pointers[0].outcome == "napped"
        assert time.monotonic() - started < 2.0
        assert host.get_workflow_instance(blocked).status is WorkflowStatus.RUNNABLE
        Gate.opened.set()
        assert host.wait_for_workflow(blocked, 5).status is WorkflowStatus.COMPLETE


class Sleepy(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).delay(lambda data, context: timedelta(milliseconds=200)).then(Noop)


def test_delay_on_a_real_host_wakes_on_time() -> None:
    with configure_workflow_host(poll_interval=60) as host:
        host.register_workflow(Sleepy())
        started = time.monotonic()
        host.wait_for_workflow(host.start_workflow("Sleepy"), 5)
        assert 0.2 <= time.monotonic() - started < 1.0


def test_wait_for_workflow_async_awaits_without_blocking_the_loop() -> None:
    async def main() -> tuple[WorkflowStatus, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        with configure_workflow_host() as host:
            host.register_workflow(Sleepy())
            ticking = asyncio.create_task(ticker())
            instance = await host.wait_for_workflow_async(host.start_workflow("Sleepy"), timeout=5)
            ticking.cancel()
            return instance.status, ticks

    status, ticks = asyncio.run(main())
    assert status is WorkflowStatus.COMPLETE
    assert ticks >= 5, "the event loop was blocked while waiting"
