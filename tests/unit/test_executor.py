"""The executor on its own: no threads, no stores, a fixed clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from liteflow.core import (
    ExecutionPointer,
    ExecutionResult,
    PointerStatus,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    WorkflowStep,
)
from liteflow.core._executor import PassResult, WorkflowExecutor
from liteflow.core._steps import WorkflowDefinition

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def define(workflow: Workflow) -> WorkflowDefinition:
    builder = WorkflowBuilder()
    workflow.build(builder)
    return builder.build(workflow.id(), workflow.version())


def new_instance(definition: WorkflowDefinition, data: Any = None) -> WorkflowInstance:
    return WorkflowInstance(
        workflow_definition_id=definition.id,
        version=definition.version,
        data=data,
        create_time=T0,
        next_execution=T0,
        execution_pointers=[ExecutionPointer(step_id=0)],
    )


executor = WorkflowExecutor(
    retry_interval=timedelta(seconds=10), default_error_behavior=WorkflowStep.RETRY, run_awaitable=asyncio.run
)


def run_until_idle(instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime = T0) -> list[PassResult]:
    results = []
    while instance.status is WorkflowStatus.RUNNABLE and instance.next_execution is not None:
        if instance.next_execution > now:
            break
        results.append(executor.execute(instance, definition, now))
        assert len(results) < 1000, "workflow did not settle"
    return results


class Record(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["trail"].append(context.step.body_name)


class Second(Record):
    pass


class Linear(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).then(Second)


def test_one_pass_runs_only_the_pointers_that_existed_when_it_started() -> None:
    definition = define(Linear())
    instance = new_instance(definition, {"trail": []})
    executor.execute(instance, definition, T0)
    assert instance.data["trail"] == ["Record"]
    assert [p.status for p in instance.execution_pointers] == [PointerStatus.COMPLETE, PointerStatus.PENDING]
    assert instance.next_execution == T0
    executor.execute(instance, definition, T0)
    assert instance.data["trail"] == ["Record", "Second"]
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.complete_time == T0 and instance.next_execution is None
    assert instance.execution_pointers[1].predecessor_id == instance.execution_pointers[0].id


class Add(StepBody):
    def __init__(self) -> None:
        self.a = 0
        self.b = 0
        self.total = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.total = self.a + self.b
        return ExecutionResult.next()


class Sum(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Add).input("a", lambda data, context: data["x"]).input("b", lambda data: data["y"]).output(
            "total", lambda step: step.total
        )


def test_inputs_are_set_before_the_step_and_outputs_written_to_data_after() -> None:
    definition = define(Sum())
    instance = new_instance(definition, {"x": 2, "y": 40})
    run_until_idle(instance, definition)
    assert instance.data == {"x": 2, "y": 40, "total": 42}


class Napper(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if context.persistence_data is None:
            return ExecutionResult.sleep(timedelta(hours=1), {"slept": True})
        return ExecutionResult.next()


class Sleepy(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Napper)


def test_sleep_sets_next_execution_and_keeps_persistence_data() -> None:
    definition = define(Sleepy())
    instance = new_instance(definition)
    executor.execute(instance, definition, T0)
    pointer = instance.execution_pointers[0]
    assert pointer.status is PointerStatus.SLEEPING
    assert pointer.persistence_data == {"slept": True}
    assert instance.next_execution == T0 + timedelta(hours=1)
    assert executor.execute(instance, definition, T0 + timedelta(minutes=59)).steps_run == 0
    executor.execute(instance, definition, T0 + timedelta(hours=1))
    assert instance.status is WorkflowStatus.COMPLETE


class Waiting(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).wait_for("approved", lambda data, context: data["order"]).output(
            "approval", lambda step: step.event_data
        )


def test_wait_for_creates_a_subscription_from_the_creation_time_and_idles() -> None:
    definition = define(Waiting())
    instance = new_instance(definition, {"trail": [], "order": 7})
    results = run_until_idle(instance, definition)
    subscriptions = [s for r in results for s in r.subscriptions]
    assert len(subscriptions) == 1
    subscription = subscriptions[0]
    assert (subscription.event_name, subscription.event_key) == ("approved", "7")
    assert subscription.subscribe_as_of == instance.create_time
    waiting = instance.execution_pointers[-1]
    assert waiting.status is PointerStatus.WAITING_FOR_EVENT and not waiting.active
    assert instance.next_execution is None and instance.status is WorkflowStatus.RUNNABLE

    waiting.event_published, waiting.event_data, waiting.active = True, "yes", True
    instance.next_execution = T0
    run_until_idle(instance, definition)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["approval"] == "yes"


class Item(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["seen"].append(context.item)


class Fanout(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).for_each(lambda data, context: data["items"]).do(
            lambda branch: branch.start_with(Item).then(Item)
        ).then(Second)


def test_foreach_runs_every_branch_then_continues_once() -> None:
    definition = define(Fanout())
    instance = new_instance(definition, {"trail": [], "seen": [], "items": ["a", "b", "c"]})
    run_until_idle(instance, definition)
    assert instance.status is WorkflowStatus.COMPLETE
    assert sorted(instance.data["seen"]) == ["a", "a", "b", "b", "c", "c"]
    assert instance.data["trail"] == ["Record", "Second"]
    foreach = instance.execution_pointers[1]
    # The branches of "a" and "b" were folded into the compacted history when the loop ended;
    # the last item's branch stays (see _compaction).
    assert len(foreach.children) == 1
    children = [p for p in instance.execution_pointers if foreach.id in p.scope]
    assert len(children) == 2 and all(p.context_item == "c" for p in children)
    assert instance.compacted is not None and instance.compacted.pointers == 4
    assert sorted(tally.runs for tally in instance.compacted.steps.values()) == [2, 2]


def test_foreach_over_nothing_goes_straight_on() -> None:
    definition = define(Fanout())
    instance = new_instance(definition, {"trail": [], "seen": [], "items": []})
    run_until_idle(instance, definition)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["trail"] == ["Record", "Second"]


class Increment(StepBody):
    def __init__(self) -> None:
        self.value = 0

    def run(self, context: StepExecutionContext) -> None:
        self.value += 1


class Loop(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).while_(lambda data, context: data["n"] < 5).do(
            lambda body: (
                body.start_with(Increment)
                .input("value", lambda data, context: data["n"])
                .output("n", lambda step: step.value)
            )
        ).then(Second)


def test_while_repeats_until_the_condition_fails() -> None:
    definition = define(Loop())
    instance = new_instance(definition, {"trail": [], "n": 0})
    run_until_idle(instance, definition)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["n"] == 5
    assert instance.data["trail"] == ["Record", "Second"]


class Branching(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).if_(lambda data, context: data["flag"]).do(lambda then: then.start_with(Item)).then(
            Second
        )


def test_if_runs_its_block_only_when_true() -> None:
    definition = define(Branching())
    for flag, seen in ((True, [None]), (False, [])):
        instance = new_instance(definition, {"trail": [], "seen": [], "flag": flag})
        run_until_idle(instance, definition)
        assert instance.status is WorkflowStatus.COMPLETE
        assert instance.data["seen"] == seen
        assert instance.data["trail"] == ["Record", "Second"]


class Fails(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        raise RuntimeError("boom")


def failing(behavior: Any) -> WorkflowDefinition:
    class Failing(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            # A retry interval goes with RETRY only: with anything else it is a BuilderError.
            interval = timedelta(seconds=30) if behavior is WorkflowStep.RETRY else None
            builder.start_with(Fails).on_error(behavior, interval)

    return define(Failing())


def test_retry_sleeps_for_the_interval_and_records_each_attempt() -> None:
    definition = failing(WorkflowStep.RETRY)
    instance = new_instance(definition)
    first = executor.execute(instance, definition, T0)
    assert instance.next_execution == T0 + timedelta(seconds=30)
    assert instance.status is WorkflowStatus.RUNNABLE
    second = executor.execute(instance, definition, T0 + timedelta(seconds=30))
    errors = first.errors + second.errors
    assert [e.attempt for e in errors] == [1, 2]
    assert errors[0].message == "boom" and errors[0].error_type == "builtins.RuntimeError"
    assert "RuntimeError: boom" in errors[0].traceback
    assert instance.execution_pointers[0].retry_count == 2


def test_suspend_and_terminate_stop_the_workflow() -> None:
    for behavior, status in (
        (WorkflowStep.SUSPEND, WorkflowStatus.SUSPENDED),
        (WorkflowStep.TERMINATE, WorkflowStatus.TERMINATED),
    ):
        definition = failing(behavior)
        instance = new_instance(definition)
        result = executor.execute(instance, definition, T0)
        assert instance.status is status
        assert instance.next_execution is None
        assert len(result.errors) == 1


class BadOutput(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Add).output("x", lambda step: step.missing)


def test_an_output_mapping_that_raises_is_a_step_error_and_data_is_untouched() -> None:
    definition = define(BadOutput())
    instance = new_instance(definition, {"keep": 1})
    result = executor.execute(instance, definition, T0)
    assert len(result.errors) == 1 and "missing" in result.errors[0].message
    assert instance.data == {"keep": 1}
    assert instance.execution_pointers[0].status is PointerStatus.FAILED


class AsyncStep(StepBody):
    async def run(self, context: StepExecutionContext) -> ExecutionResult:
        await asyncio.sleep(0)
        context.workflow.data["async"] = True
        return ExecutionResult.outcome("done")


class AsyncFlow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(AsyncStep)


def test_async_step_bodies_are_awaited() -> None:
    definition = define(AsyncFlow())
    instance = new_instance(definition, {})
    run_until_idle(instance, definition)
    assert instance.data == {"async": True}
    assert instance.execution_pointers[0].outcome == "done"


def test_inline_function_steps_and_none_data_gets_an_object_for_outputs() -> None:
    calls: list[str] = []

    class Inline(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: calls.append("first")).then(Add).output("total", lambda s: 3)

    definition = define(Inline())
    instance = new_instance(definition)
    run_until_idle(instance, definition)
    assert calls == ["first"]
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data.total == 3
