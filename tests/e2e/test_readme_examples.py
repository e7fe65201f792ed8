"""The README's examples, as written there, checked end to end on the default in-memory host."""

from __future__ import annotations

import time
from typing import Any

import pytest

from liteflow.core import (
    ExecutionResult,
    PointerStatus,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowInstance,
    WorkflowTimeoutError,
    configure_workflow_host,
)

TIMEOUT = 5  # seconds; generous upper bounds, never waited out when things work
NOT_WOKEN = 0.3  # how long a workflow must stay asleep to count as "not woken"


# -- the README's steps ----------------------------------------------------------------------


class Hello(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        print("Hello world")  # returns nothing, as in the README: that means "go on"


class Goodbye(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Goodbye")
        return ExecutionResult.next()


class AddNumbers(StepBody):
    def __init__(self) -> None:
        self.input1 = 0
        self.input2 = 0
        self.output = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.output = self.input1 + self.input2
        return ExecutionResult.next()


class MyData:
    def __init__(self, value1: int = 0, value2: int = 0) -> None:
        self.value1 = value1
        self.value2 = value2
        self.value3 = 0


class DoStuff(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"doing stuff...{context.execution_pointer.context_item}")
        return ExecutionResult.next()


class Increment(StepBody):
    """The while example's DoStuff: reads my_value, writes your_value."""

    def __init__(self) -> None:
        self.my_value = 0
        self.your_value = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.your_value = self.my_value + 1
        print(f"doing stuff...{self.your_value}")
        return ExecutionResult.next()


class SlowHello(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        time.sleep(0.2)
        print("Hello world")


# -- the README's workflows ------------------------------------------------------------------


class HelloWorld(Workflow):
    def id(self) -> str:
        return "MyWorkflow"

    def version(self) -> int:
        return 1

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).then(Goodbye)


class PassingData(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).then(AddNumbers).input("input1", lambda data, context: data.value1).input(
            "input2", lambda data, context: data.value2
        ).output("value3", lambda step: step.output).then(Goodbye)


class WaitForEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).wait_for("event1", lambda data, context: "key1").then(Goodbye)


class CaptureEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).wait_for("event1", lambda data, context: "key1").output(
            "captured_value", lambda step: step.event_data
        ).then(Goodbye)


class SlowCaptureEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(SlowHello).wait_for("event1", lambda data, context: "key1").output(
            "captured_value", lambda step: step.event_data
        ).then(Goodbye)


class ForEach(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).for_each(lambda data, context: ["abc", "def", "xyz"]).do(
            lambda x: x.start_with(DoStuff)
        ).then(Goodbye)


class WhileLoop(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).while_(lambda data, context: data.value1 < 3).do(
            lambda do: (
                do.start_with(Increment)
                .input("my_value", lambda data, context: data.value1)
                .output("value1", lambda step: step.your_value)
            )
        ).then(Goodbye)


class IfCondition(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello).if_(lambda data, context: data.value1 > 3).do(lambda x: x.start_with(DoStuff)).then(
            Goodbye
        )


# -- helpers ---------------------------------------------------------------------------------


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def run(host: WorkflowHost, workflow: Workflow, data: Any = None) -> WorkflowInstance:
    host.register_workflow(workflow)
    wid = host.start_workflow(workflow.id(), workflow.version(), data)
    return host.wait_for_workflow(wid, timeout=TIMEOUT)


def wait_until_waiting(host: WorkflowHost, wid: str) -> None:
    """Until the instance has a pointer subscribed to an event (polls the store briefly)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        pointers = host.get_workflow_instance(wid).execution_pointers
        if any(p.status is PointerStatus.WAITING_FOR_EVENT for p in pointers):
            return
        time.sleep(0.005)
    raise AssertionError(f"workflow {wid} never reached its wait_for step")


# -- steps -----------------------------------------------------------------------------------


def test_hello_world(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        instance = run(host, HelloWorld())
    assert instance.status is WorkflowInstance.COMPLETE
    assert instance.workflow_definition_id == "MyWorkflow" and instance.version == 1
    assert [p.step_id for p in instance.execution_pointers] == [0, 1]
    assert all(p.status is PointerStatus.COMPLETE for p in instance.execution_pointers)
    assert printed(capsys) == ["Hello world", "Goodbye"]


def test_readme_usage_start_workflow_with_none_data(capsys: pytest.CaptureFixture[str]) -> None:
    host = configure_workflow_host()
    host.register_workflow(HelloWorld())
    host.start()
    try:
        wid = host.start_workflow("MyWorkflow", 1, None)
        assert isinstance(wid, str) and wid
        assert host.wait_for_workflow(wid, timeout=TIMEOUT).status is WorkflowInstance.COMPLETE
    finally:
        host.stop()
    assert host.get_workflow_instance(wid).status is WorkflowInstance.COMPLETE  # readable after stop


# -- passing data ----------------------------------------------------------------------------


def test_passing_data_between_steps(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        instance = run(host, PassingData(), MyData(value1=2, value2=3))
    assert instance.status is WorkflowInstance.COMPLETE
    assert isinstance(instance.data, MyData)
    assert (instance.data.value1, instance.data.value2, instance.data.value3) == (2, 3, 5)
    assert [p.step_id for p in instance.execution_pointers] == [0, 1, 2]
    assert printed(capsys) == ["Hello world", "Goodbye"]


# -- events ----------------------------------------------------------------------------------


def test_wait_for_event_wakes_the_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        host.register_workflow(WaitForEvent())
        wid = host.start_workflow("WaitForEvent", 1, None)
        wait_until_waiting(host, wid)
        assert printed(capsys) == ["Hello world"]
        host.publish_event("event1", "key1", "hello")
        instance = host.wait_for_workflow(wid, timeout=TIMEOUT)
    assert instance.status is WorkflowInstance.COMPLETE
    assert printed(capsys) == ["Goodbye"]
    waiting = instance.execution_pointers[1]
    assert (waiting.event_name, waiting.event_key) == ("event1", "key1")
    assert waiting.event_published and waiting.event_data == "hello"


def test_event_data_is_captured_by_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        host.register_workflow(CaptureEvent())
        wid = host.start_workflow("CaptureEvent", 1, None)
        wait_until_waiting(host, wid)
        host.publish_event("event1", "key1", "hello")
        instance = host.wait_for_workflow(wid, timeout=TIMEOUT)
    assert instance.status is WorkflowInstance.COMPLETE
    assert instance.data.captured_value == "hello"
    assert printed(capsys) == ["Hello world", "Goodbye"]


def test_structured_event_data_is_captured_into_dict_data() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(CaptureEvent())
        wid = host.start_workflow("CaptureEvent", 1, {"captured_value": None})
        host.publish_event("event1", "key1", {"amount": 3, "items": ["a", "b"]})
        instance = host.wait_for_workflow(wid, timeout=TIMEOUT)
    assert instance.data == {"captured_value": {"amount": 3, "items": ["a", "b"]}}


def test_event_for_another_key_does_not_wake_the_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        host.register_workflow(CaptureEvent())
        wid = host.start_workflow("CaptureEvent", 1, None)
        wait_until_waiting(host, wid)
        host.publish_event("event1", "key2", "wrong key")
        host.publish_event("event2", "key1", "wrong name")
        with pytest.raises(WorkflowTimeoutError):
            host.wait_for_workflow(wid, timeout=NOT_WOKEN)
        assert host.get_workflow_instance(wid).status is WorkflowInstance.RUNNABLE
        assert printed(capsys) == ["Hello world"]

        host.publish_event("event1", "key1", "hello")
        instance = host.wait_for_workflow(wid, timeout=TIMEOUT)
    assert instance.data.captured_value == "hello"
    assert printed(capsys) == ["Goodbye"]


def test_event_published_before_the_wait_is_reached_is_delivered(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        host.register_workflow(SlowCaptureEvent())
        wid = host.start_workflow("SlowCaptureEvent", 1, None)
        host.publish_event("event1", "key1", "hello")  # while the first step is still sleeping
        instance = host.wait_for_workflow(wid, timeout=TIMEOUT)
    assert instance.status is WorkflowInstance.COMPLETE
    assert instance.data.captured_value == "hello"
    assert printed(capsys) == ["Hello world", "Goodbye"]


def test_every_workflow_waiting_on_the_key_gets_the_event() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(CaptureEvent())
        first = host.start_workflow("CaptureEvent", 1, None)
        second = host.start_workflow("CaptureEvent", 1, None)
        wait_until_waiting(host, first)
        wait_until_waiting(host, second)
        host.publish_event("event1", "key1", "hello")
        instances = [host.wait_for_workflow(wid, timeout=TIMEOUT) for wid in (first, second)]
    for instance in instances:
        assert instance.status is WorkflowInstance.COMPLETE
        assert instance.data.captured_value == "hello"


# -- flow control ----------------------------------------------------------------------------


def test_parallel_foreach(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        instance = run(host, ForEach())
    assert instance.status is WorkflowInstance.COMPLETE
    lines = printed(capsys)
    assert lines[0] == "Hello world" and lines[-1] == "Goodbye"
    assert sorted(lines[1:-1]) == ["doing stuff...abc", "doing stuff...def", "doing stuff...xyz"]
    # Hello, the for_each, the last item's DoStuff, Goodbye: the loop folded the other two
    # branches into its compacted history when it ended (docs/flow-control.md, "Long loops").
    assert len(instance.execution_pointers) == 4
    branches = [p for p in instance.execution_pointers if p.context_item is not None]
    assert [b.context_item for b in branches] == ["xyz"]
    assert instance.compacted is not None and instance.compacted.pointers == 2
    goodbye = instance.execution_pointers[-1]
    ends = [b.end_time for b in branches] + [t.last_end for t in instance.compacted.steps.values()]
    assert all(end is not None and end <= goodbye.start_time for end in ends)  # type: ignore[operator]


def test_while_loop_runs_until_the_condition_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        instance = run(host, WhileLoop(), MyData())
    assert instance.status is WorkflowInstance.COMPLETE
    assert instance.data.value1 == 3
    assert len(instance.execution_pointers) == 4  # Hello, the while, its last round, Goodbye
    assert instance.compacted is not None and instance.compacted.pointers == 2  # the two rounds before
    assert printed(capsys) == ["Hello world", "doing stuff...1", "doing stuff...2", "doing stuff...3", "Goodbye"]


def test_while_loop_with_a_false_condition_never_runs_its_block(capsys: pytest.CaptureFixture[str]) -> None:
    with configure_workflow_host() as host:
        instance = run(host, WhileLoop(), MyData(value1=7))
    assert instance.status is WorkflowInstance.COMPLETE
    assert instance.data.value1 == 7
    assert printed(capsys) == ["Hello world", "Goodbye"]


@pytest.mark.parametrize(("value1", "runs_block"), [(5, True), (3, False), (0, False)])
def test_if_condition(capsys: pytest.CaptureFixture[str], value1: int, runs_block: bool) -> None:
    with configure_workflow_host() as host:
        instance = run(host, IfCondition(), MyData(value1=value1))
    assert instance.status is WorkflowInstance.COMPLETE
    expected = ["Hello world", "doing stuff...None", "Goodbye"] if runs_block else ["Hello world", "Goodbye"]
    assert printed(capsys) == expected
