"""Definitions as data: each README example written as YAML runs as its fluent twin does.

Each case builds the same workflow twice, fluently and from YAML, runs both on the test host with
the same data and events, and checks that the two give the expected steps, in order, and the same
final data and status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    ExecutionResult,
    RetryPolicy,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    WorkflowStep,
    export_workflow,
    load_workflow,
)
from liteflow.core._definition_format import parse_duration
from liteflow.core._definitions import _error_handling
from liteflow.testing import WorkflowTestHost

TRACE: list[str] = []
ROOT = Path(__file__).resolve().parents[2]


class Recorded(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        item = context.execution_pointer.context_item
        TRACE.append(type(self).__name__ + ("" if item is None else f" {item}"))
        return ExecutionResult.next()


class Hello(Recorded):
    pass


class Goodbye(Recorded):
    pass


class DoStuff(Recorded):
    pass


class Ship(Recorded):
    pass


class Accept(Recorded):
    pass


class HoldForReview(Recorded):
    pass


class ShipByPost(Recorded):
    pass


class ShipByCourier(Recorded):
    pass


class BookHotel(Recorded):
    pass


class CancelHotel(Recorded):
    pass


class BookFlight(Recorded):
    pass


class CancelFlight(Recorded):
    pass


class NotifyCancelled(Recorded):
    pass


class Refund(Recorded):
    pass


class Escalate(Recorded):
    pass


class Retrying(Recorded):
    pass


class TakePayment(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        TRACE.append("TakePayment")
        raise RuntimeError("card declined")


class Flaky(StepBody):
    """Fails twice, then succeeds."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        TRACE.append(f"Flaky {context.execution_pointer.retry_count}")
        if context.execution_pointer.retry_count < 2:
            raise ConnectionError("unavailable")
        return ExecutionResult.next()


class AddNumbers(StepBody):
    def __init__(self) -> None:
        self.input1 = 0
        self.input2 = 0
        self.output = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.output = self.input1 + self.input2
        TRACE.append(f"AddNumbers {self.input1}+{self.input2}")
        return ExecutionResult.next()


class Increment(StepBody):
    def __init__(self) -> None:
        self.my_value = 0
        self.your_value = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.your_value = self.my_value + 1
        TRACE.append(f"Increment {self.your_value}")
        return ExecutionResult.next()


class CheckRisk(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        TRACE.append("CheckRisk")
        return ExecutionResult.outcome("low" if context.workflow.data.total < 1000 else "high")


class Attempt(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data.attempts += 1
        TRACE.append(f"Attempt {context.workflow.data.attempts}")
        return ExecutionResult.outcome("done" if context.workflow.data.attempts >= 3 else "again")


class CheckJob(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        data = context.workflow.data
        data.checks += 1
        data.job_done = data.checks >= 3
        TRACE.append(f"CheckJob {data.checks}")
        return ExecutionResult.next()


def quote(context: StepExecutionContext) -> None:
    data = context.workflow.data
    data["price"] = 5 + 4 * data["weight"]
    TRACE.append(f"quote {data['price']}")


STEPS: dict[str, Any] = {
    cls.__name__: cls
    for cls in (
        Hello,
        Goodbye,
        DoStuff,
        Ship,
        Accept,
        HoldForReview,
        ShipByPost,
        ShipByCourier,
        BookHotel,
        CancelHotel,
        BookFlight,
        CancelFlight,
        NotifyCancelled,
        Refund,
        Escalate,
        Retrying,
        TakePayment,
        Flaky,
        AddNumbers,
        Increment,
        CheckRisk,
        Attempt,
        CheckJob,
    )
}
STEPS["quote"] = quote


class MyData:
    def __init__(self, **values: Any) -> None:
        self.value1 = 0
        self.value2 = 0
        self.value3 = 0
        self.total = 0
        self.weight = 0
        self.attempts = 0
        self.checks = 0
        self.job_done = False
        self.cancelled = False
        self.items = ["abc", "def", "xyz"]
        self.__dict__.update(values)


class Fluent(Workflow):
    def __init__(self, workflow_id: str, build: Callable[[WorkflowBuilder], Any]) -> None:
        self._id = workflow_id
        self._build = build

    def id(self) -> str:
        return self._id

    def build(self, builder: WorkflowBuilder) -> None:
        self._build(builder)


class QuoteWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(quote)


@dataclass
class Case:
    name: str
    fluent: Callable[[WorkflowBuilder], Any]
    yaml: str
    expected: list[str]
    data: Callable[[], Any] = MyData
    events: list[tuple[str, str, Any]] = field(default_factory=list)
    status: WorkflowStatus = WorkflowStatus.COMPLETE
    advance: timedelta | None = None


def run(workflow: Workflow, case: Case) -> tuple[WorkflowStatus, list[str], Any]:
    TRACE.clear()
    test = WorkflowTestHost(workflow, QuoteWorkflow())
    workflow_id = test.start_workflow(workflow.id(), data=case.data())
    if case.advance is not None:
        test.advance(case.advance)
    for name, key, data in case.events:
        test.publish_event(name, key, data)
    instance = test.run_to_completion(workflow_id)
    data = instance.data if isinstance(instance.data, dict) else vars(instance.data)
    return instance.status, list(TRACE), data


CASES = [
    Case(
        "hello-world",
        lambda b: b.start_with(Hello).then(Goodbye),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: bye}
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "Goodbye"],
    ),
    Case(
        "passing-data",
        lambda b: (
            b.start_with(Hello)
            .then(AddNumbers)
            .input("input1", lambda data, context: data.value1)
            .input("input2", lambda data, context: data.value2)
            .output("value3", lambda step: step.output)
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: add}
          - id: add
            type: AddNumbers
            inputs: {input1: data.value1, input2: data.value2}
            outputs: {value3: step.output}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "AddNumbers 2+3", "Goodbye"],
        data=lambda: MyData(value1=2, value2=3),
    ),
    Case(
        "events",
        lambda b: (
            b.start_with(Hello)
            .wait_for("event1", lambda data, context: "key1")
            .output("captured_value", lambda step: step.event_data)
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: wait}
          - id: wait
            type: wait_for
            event_name: event1
            event_key: '"key1"'
            outputs: {captured_value: step.event_data}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "Goodbye"],
        events=[("event1", "key1", "hello")],
    ),
    Case(
        "foreach",
        lambda b: (
            b.start_with(Hello)
            .for_each(lambda data, context: ["abc", "def", "xyz"])
            .do(lambda x: x.start_with(DoStuff))
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: each}
          - id: each
            type: for_each
            items: "['abc', 'def', 'xyz']"
            do: [[{id: stuff, type: DoStuff}]]
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "DoStuff abc", "DoStuff def", "DoStuff xyz", "Goodbye"],
    ),
    Case(
        "sequential-foreach",
        lambda b: (
            b.start_with(Hello)
            .for_each(lambda data, context: data.items, run_parallel=False)
            .do(lambda x: x.start_with(DoStuff).then(Ship))
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: each}
          - id: each
            type: for_each
            items: data.items
            run_parallel: false
            do: [[{id: stuff, type: DoStuff, next: ship}, {id: ship, type: Ship}]]
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "DoStuff abc", "Ship abc", "DoStuff def", "Ship def", "DoStuff xyz", "Ship xyz", "Goodbye"],
    ),
    Case(
        "while",
        lambda b: (
            b.start_with(Hello)
            .while_(lambda data, context: data.value1 < 3)
            .do(
                lambda do: (
                    do.start_with(Increment)
                    .input("my_value", lambda data, context: data.value1)
                    .output("value1", lambda step: step.your_value)
                )
            )
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: loop}
          - id: loop
            type: while
            condition: data.value1 < 3
            do:
              - - id: increment
                  type: Increment
                  inputs: {my_value: data.value1}
                  outputs: {value1: step.your_value}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "Increment 1", "Increment 2", "Increment 3", "Goodbye"],
    ),
    Case(
        "if",
        lambda b: (
            b.start_with(Hello)
            .if_(lambda data, context: data.value1 > 3)
            .do(lambda x: x.start_with(DoStuff))
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: check}
          - {id: check, type: if, condition: data.value1 > 3, do: [[{id: stuff, type: DoStuff}]], next: bye}
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "DoStuff", "Goodbye"],
        data=lambda: MyData(value1=5),
    ),
    Case(
        "delay",
        lambda b: b.start_with(Hello).delay(lambda data, context: timedelta(days=3)).then(Goodbye),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: wait}
          - {id: wait, type: delay, period: days(3), next: bye}
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "Goodbye"],
    ),
    Case(
        "schedule",
        lambda b: (
            b.start_with(Hello)
            .schedule(lambda data, context: timedelta(hours=1))
            .do(lambda later: later.start_with(DoStuff))
            .then(Ship)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: later}
          - {id: later, type: schedule, delay: 3600, do: [[{id: stuff, type: DoStuff}]], next: ship}
          - {id: ship, type: Ship}
        """,
        ["Hello", "Ship", "DoStuff"],
    ),
    Case(
        "recur",
        lambda b: (
            b.start_with(Hello)
            .recur(lambda data, context: timedelta(minutes=10), lambda data, context: data.job_done)
            .do(lambda every: every.start_with(CheckJob))
            .then(Ship)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: every}
          - id: every
            type: recur
            interval: minutes(10)
            until: data.job_done
            do: [[{id: check, type: CheckJob}]]
            next: ship
          - {id: ship, type: Ship}
        """,
        ["Hello", "Ship", "CheckJob 1", "CheckJob 2", "CheckJob 3"],
    ),
    Case(
        "parallel",
        lambda b: (
            b.start_with(Hello)
            .parallel()
            .do(lambda branch: branch.start_with(BookHotel))
            .do(lambda branch: branch.start_with(BookFlight).then(Ship))
            .join()
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: both}
          - id: both
            type: parallel
            do:
              - [{id: hotel, type: BookHotel}]
              - [{id: flight, type: BookFlight, next: ship}, {id: ship, type: Ship}]
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "BookHotel", "BookFlight", "Ship", "Goodbye"],
    ),
    Case(
        "outcomes",
        lambda b: (
            b.start_with(CheckRisk)
            .when("low")
            .do(lambda then: then.start_with(Accept))
            .when("high")
            .do(lambda then: then.start_with(HoldForReview))
            .then(Ship)
        ),
        """
        id: W
        steps:
          - id: risk
            type: CheckRisk
            when:
              - {outcome: low, do: [[{id: accept, type: Accept}]]}
              - {outcome: high, do: [[{id: hold, type: HoldForReview}]]}
            next: ship
          - {id: ship, type: Ship}
        """,
        ["CheckRisk", "HoldForReview", "Ship"],
        data=lambda: MyData(total=5000),
    ),
    Case(
        # Every block whose value matches runs; the steps after the blocks run once, after both.
        "outcomes-two-blocks-match",
        lambda b: (
            b.start_with(CheckRisk)
            .when("high")
            .do(lambda then: then.start_with(Accept))
            .when("high")
            .do(lambda then: then.start_with(HoldForReview))
            .then(Ship)
        ),
        """
        id: W
        steps:
          - id: risk
            type: CheckRisk
            when:
              - {outcome: high, do: [[{id: accept, type: Accept}]]}
              - {outcome: high, do: [[{id: hold, type: HoldForReview}]]}
            next: ship
          - {id: ship, type: Ship}
        """,
        ["CheckRisk", "Accept", "HoldForReview", "Ship"],
        data=lambda: MyData(total=5000),
    ),
    Case(
        # An outcome no block matches goes straight on to the steps after the blocks.
        "outcomes-unmatched",
        lambda b: b.start_with(CheckRisk).when("low").do(lambda then: then.start_with(Accept)).then(Ship),
        """
        id: W
        steps:
          - id: risk
            type: CheckRisk
            when: [{outcome: low, do: [[{id: accept, type: Accept}]]}]
            next: ship
          - {id: ship, type: Ship}
        """,
        ["CheckRisk", "Ship"],
        data=lambda: MyData(total=5000),
    ),
    Case(
        # next after when blocks back to an earlier step: taken once per round, whether a block
        # matched (again) or not; the done block ends the workflow.
        "jump-after-when",
        lambda b: (
            b.start_with(Hello)
            .then(Attempt)
            .id("attempt")
            .when("again")
            .do(lambda then: then.start_with(Retrying))
            .when("done")
            .do(lambda then: then.start_with(Goodbye).end_workflow())
            .attach("attempt")
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: attempt}
          - id: attempt
            type: Attempt
            when:
              - {outcome: again, do: [[{id: retrying, type: Retrying}]]}
              - {outcome: done, do: [[{id: bye, type: Goodbye, next: end}, {id: end, type: end_workflow}]]}
            next: attempt
        """,
        ["Hello", "Attempt 1", "Retrying", "Attempt 2", "Retrying", "Attempt 3", "Goodbye"],
    ),
    Case(
        "decide",
        lambda b: (
            b.start_with(Hello)
            .decide(lambda data, context: "small" if data.weight < 2 else "large")
            .branch("small", lambda branch: branch.start_with(ShipByPost))
            .branch("large", lambda branch: branch.start_with(ShipByCourier))
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: route}
          - id: route
            type: decide
            expression: "'small' if data.weight < 2 else 'large'"
            branches:
              - {value: small, do: [[{id: post, type: ShipByPost}]]}
              - {value: large, do: [[{id: courier, type: ShipByCourier}]]}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "ShipByCourier", "Goodbye"],
        data=lambda: MyData(weight=7),
    ),
    Case(
        "saga",
        lambda b: (
            b.start_with(Hello)
            .saga(
                lambda saga: (
                    saga.start_with(BookHotel)
                    .compensate_with(CancelHotel)
                    .then(BookFlight)
                    .compensate_with(CancelFlight)
                    .then(TakePayment)
                )
            )
            .compensate_with(NotifyCancelled)
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: trip}
          - id: trip
            type: saga
            compensate_with: NotifyCancelled
            do:
              - - {id: hotel, type: BookHotel, compensate_with: CancelHotel, next: flight}
                - {id: flight, type: BookFlight, compensate_with: CancelFlight, next: pay}
                - {id: pay, type: TakePayment}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        [
            "Hello",
            "BookHotel",
            "BookFlight",
            "TakePayment",
            "CancelFlight",
            "CancelHotel",
            "NotifyCancelled",
            "Goodbye",
        ],
    ),
    Case(
        "cancel-condition",
        lambda b: (
            b.start_with(Hello)
            .while_(lambda data, context: True)
            .do(lambda poll: poll.start_with(CheckJob).delay(lambda data, context: timedelta(minutes=1)))
            .cancel_condition(lambda data, context: data.job_done, proceed_after_cancel=True)
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: poll}
          - id: poll
            type: while
            condition: true
            cancel_condition: data.job_done
            proceed_after_cancel: true
            do: [[{id: check, type: CheckJob, next: pause}, {id: pause, type: delay, period: 60}]]
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "CheckJob 1", "CheckJob 2", "CheckJob 3", "Goodbye"],
    ),
    Case(
        "end-workflow",
        lambda b: (
            b.start_with(Hello)
            .if_(lambda data, context: data.cancelled)
            .do(lambda then: then.start_with(Refund).end_workflow())
            .then(Ship)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: check}
          - id: check
            type: if
            condition: data.cancelled
            do: [[{id: refund, type: Refund, next: end}, {id: end, type: end_workflow}]]
            next: ship
          - {id: ship, type: Ship}
        """,
        ["Hello", "Refund"],
        data=lambda: MyData(cancelled=True),
    ),
    Case(
        "jumps",
        lambda b: (
            b.start_with(Hello)
            .then(Attempt)
            .id("attempt")
            .when("again")
            .do(lambda then: then.start_with(Retrying).attach("attempt"))
            .when("done")
            .do(lambda then: then.start_with(Goodbye))
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: attempt}
          - id: attempt
            type: Attempt
            when:
              - {outcome: again, do: [[{id: retrying, type: Retrying, next: attempt}]]}
              - {outcome: done, do: [[{id: bye, type: Goodbye}]]}
        """,
        ["Hello", "Attempt 1", "Retrying", "Attempt 2", "Retrying", "Attempt 3", "Goodbye"],
    ),
    Case(
        "timeout",
        lambda b: (
            b.start_with(Hello)
            .wait_for("approved", lambda data, context: "o-1", timeout=timedelta(days=2), timeout_outcome="expired")
            .when("expired")
            .do(lambda then: then.start_with(Escalate))
            .when(None)
            .do(lambda then: then.start_with(Ship))
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: approval}
          - id: approval
            type: wait_for
            event_name: approved
            event_key: "'o-1'"
            timeout: 2d
            timeout_outcome: expired
            when:
              - {outcome: expired, do: [[{id: escalate, type: Escalate}]]}
              - {outcome: null, do: [[{id: ship, type: Ship}]]}
        """,
        ["Hello", "Escalate"],
    ),
    Case(
        "sub-workflow",
        lambda b: (
            b.start_with(Hello)
            .sub_workflow("QuoteWorkflow", lambda data, context: {"weight": data["weight"]})
            .output("shipping", lambda step: step.result["price"])
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - {id: hello, type: Hello, next: quote}
          - id: quote
            type: sub_workflow
            workflow_id: QuoteWorkflow
            data: "{'weight': data.weight}"
            outputs: {shipping: step.result.price}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["Hello", "quote 17", "Goodbye"],
        data=lambda: {"weight": 3},
    ),
    Case(
        "retry",
        lambda b: b.start_with(Flaky).on_error(WorkflowStep.RETRY, timedelta(seconds=30)).then(Goodbye),
        """
        id: W
        steps:
          - {id: flaky, type: Flaky, error_behavior: retry, retry_interval: 30s, next: bye}
          - {id: bye, type: Goodbye}
        """,
        ["Flaky 0", "Flaky 1", "Flaky 2", "Goodbye"],
    ),
    Case(
        "retry-policy-then-terminate",
        lambda b: (
            b.start_with(TakePayment)
            .on_error(RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1), then=WorkflowStep.TERMINATE))
            .then(Goodbye)
        ),
        """
        id: W
        steps:
          - id: pay
            type: TakePayment
            error_behavior: {max_attempts: 3, initial_interval: 1s, then: terminate}
            next: bye
          - {id: bye, type: Goodbye}
        """,
        ["TakePayment", "TakePayment", "TakePayment"],
        status=WorkflowStatus.TERMINATED,
    ),
    Case(
        "default-error-behavior",
        lambda b: b.use_default_error_behavior(WorkflowStep.TERMINATE).start_with(TakePayment).then(Goodbye),
        """
        id: W
        default_error_behavior: terminate
        steps:
          - {id: pay, type: TakePayment, next: bye}
          - {id: bye, type: Goodbye}
        """,
        ["TakePayment"],
        status=WorkflowStatus.TERMINATED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_yaml_definition_runs_as_its_fluent_twin(case: Case) -> None:
    fluent = run(Fluent("W", case.fluent), case)
    loaded = run(load_workflow(case.yaml.replace("\n        ", "\n"), steps=STEPS), case)
    assert fluent[1] == case.expected  # the fluent twin does what the README says
    assert fluent[0] is case.status
    assert loaded == fluent


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_an_exported_definition_loads_back_and_runs_the_same(case: Case) -> None:
    loaded = load_workflow(case.yaml.replace("\n        ", "\n"), steps=STEPS)
    for form in ("dict", "json", "yaml"):
        again = load_workflow(export_workflow(loaded, format=form), steps=STEPS)
        assert export_workflow(again) == export_workflow(loaded)
    assert run(again, case) == run(loaded, case)


class PrintItem(StepBody):
    def __init__(self) -> None:
        self.item: Any = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        TRACE.append(f"PrintItem {self.item}")
        return ExecutionResult.next()


def readme_example() -> str:
    section = (ROOT / "docs" / "definitions-as-data.md").read_text(encoding="utf-8")  # the README's section, moved
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_yaml_example_runs_as_its_fluent_twin() -> None:
    def fluent(b: WorkflowBuilder) -> None:
        b.start_with(Hello).then(AddNumbers).input("input1", lambda data, context: data.value1).input(
            "input2", lambda data, context: data.value2
        ).output("value3", lambda step: step.output).wait_for("event1", lambda data, context: "key1").output(
            "captured", lambda step: step.event_data
        ).for_each(lambda data, context: data.items).do(
            lambda each: each.start_with(PrintItem).input("item", lambda data, context: context.item)
        ).if_(lambda data, context: data.value3 > 10).do(lambda then: then.start_with(Goodbye))

    case = Case("readme", fluent, "", [], data=lambda: MyData(value1=5, value2=7, items=["a", "b"]))
    case.events = [("event1", "key1", "hi")]
    steps = {**STEPS, "PrintItem": PrintItem}
    expected = ["Hello", "AddNumbers 5+7", "PrintItem a", "PrintItem b", "Goodbye"]
    fluent_run = run(Fluent("HelloWorld", fluent), case)
    assert fluent_run[:2] == (WorkflowStatus.COMPLETE, expected)
    assert fluent_run[2]["captured"] == "hi" and fluent_run[2]["value3"] == 12
    assert run(load_workflow(readme_example(), steps=steps), case) == fluent_run


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_case_validates_against_the_shipped_schema(case: Case) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    schema = json.loads((ROOT / "liteflow" / "core" / "schema" / "workflow-definition.schema.json").read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(case.yaml))]
    assert errors == []


_EXPRESSION_KEYS = {"event_key", "effective_date", "items", "condition", "expression", "period", "delay", "interval"}
_EXPRESSION_KEYS |= {"until", "data", "cancel_condition"}
_DURATION_KEYS = {"retry_interval", "timeout", "default_retry_interval"}


def shape(document: dict[str, Any]) -> Any:
    """A definition with step ids renumbered in order, expressions and Python callables blanked, and
    durations and retry policies as values: what a fluent export and its YAML twin must share."""
    names: dict[str, str] = {}

    def blocks(step: dict[str, Any]) -> list[Any]:
        labelled = [*step.get("when", []), *step.get("branches", [])]
        return [*step.get("do", []), *(block for item in labelled for block in item["do"])]

    def number(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            names[step["id"]] = f"#{len(names)}"
            for block in blocks(step):
                number(block)

    def normal(value: Any, key: str) -> Any:
        if isinstance(value, dict) and key in ("error_behavior", "default_error_behavior"):
            return _error_handling(value, "")
        if isinstance(value, dict) and ("python" in value or key in ("inputs", "outputs")):
            return "<callable>" if "python" in value else sorted(value)
        if isinstance(value, dict):
            return {k: normal(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [normal(v, key) for v in value]
        if key in ("id", "next"):
            return names.get(value, value)  # the workflow's own id is not a step's
        if key in _EXPRESSION_KEYS:
            return "<callable>"
        return parse_duration(value, key) if key in _DURATION_KEYS else value

    number(document["steps"])
    return normal(document, "")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_fluent_export_has_the_structure_of_the_yaml_twin(case: Case) -> None:
    fluent = export_workflow(Fluent("W", case.fluent))
    loaded = export_workflow(load_workflow(case.yaml, steps=STEPS))
    assert shape(fluent) == shape(loaded)


def test_a_loaded_workflow_survives_a_restart_on_a_durable_store(tmp_path: Path) -> None:
    document = """
    id: Durable
    steps:
      - id: add
        type: AddNumbers
        inputs: {input1: data.a, input2: "data['b']"}
        outputs: {sum: step.output}
        next: wait
      - {id: wait, type: wait_for, event_name: go, event_key: data.key, outputs: {got: step.event_data}, next: bye}
      - {id: bye, type: Goodbye}
    """
    url = f"sqlite:///{tmp_path / 'store.db'}"
    TRACE.clear()
    first = WorkflowTestHost(load_workflow(document, steps=STEPS), persistence=url)
    workflow_id = first.start_workflow("Durable", data={"a": 2, "b": 3, "key": "k-1"})
    first.host.persistence.close()
    # Another host, with the definition loaded again from the same text, finishes the instance.
    second = WorkflowTestHost(load_workflow(document, steps=STEPS), persistence=url)
    second.publish_event("go", "k-1", "ready")
    instance = second.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data == {"a": 2, "b": 3, "key": "k-1", "sum": 5, "got": "ready"}
    assert TRACE == ["AddNumbers 2+3", "Goodbye"]


def test_an_expression_failing_at_run_time_is_a_step_error_naming_the_step() -> None:
    document = """
    id: Failing
    default_error_behavior: terminate
    steps:
      - {id: add, type: AddNumbers, inputs: {input1: data.missing}}
    """
    test = WorkflowTestHost(load_workflow(document, steps=STEPS))
    workflow_id = test.start_workflow("Failing", data={"present": 1})
    assert test.instance(workflow_id).status is WorkflowStatus.TERMINATED
    [error] = test.errors(workflow_id)
    assert error.error_type == "liteflow.core.DefinitionError"
    assert "step 'add' (AddNumbers), input 'input1': expression 'data.missing' failed" in error.message
