"""Workflow Core behaviours LiteFlow got wrong (issue 17), each on the threaded host and on the
manual-clock test host: saga and container ``on_error``, ``when`` blocks that both match, an
outcome no ``when`` matches, ``run_parallel`` as a function, and verbs that begin a block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    ExecutionResult,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    WorkflowStep,
    configure_workflow_host,
)
from liteflow.testing import WorkflowTestHost

Build = Callable[[WorkflowBuilder], Any]
SHORT = timedelta(milliseconds=20)


def log(name: str) -> Any:
    def step(context: StepExecutionContext) -> None:
        item = context.item
        context.workflow.data["log"].append(name if item is None else f"{name}:{item}")

    step.__qualname__ = name
    return step


def fail_first(name: str, times: int = 1) -> Any:
    """Fails its first ``times`` runs (counted in the data), then succeeds."""

    def step(context: StepExecutionContext) -> None:
        data = context.workflow.data
        data["log"].append(name)
        data.setdefault("failures", 0)
        if data["failures"] < times:
            data["failures"] += 1
            raise RuntimeError(f"{name} failed")

    step.__qualname__ = name
    return step


def workflow(build: Build) -> Workflow:
    class Built(Workflow):
        def id(self) -> str:
            return "Flow"

        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    return Built()


class Runner:
    """Runs one workflow on either host and returns it once it has ended."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.test: WorkflowTestHost | None = None
        self.host: Any = None

    def run(self, build: Build, data: dict[str, Any] | None = None) -> WorkflowInstance:
        data = {"log": [], **(data or {})}
        if self.kind == "manual clock":
            self.test = WorkflowTestHost(workflow(build))
            return self.test.run_to_completion(self.test.start_workflow("Flow", data=data))
        self.host = configure_workflow_host(poll_interval=0.5)
        self.host.register_workflow(workflow(build))
        self.host.start()
        workflow_id = self.host.start_workflow("Flow", data=data)
        instance: WorkflowInstance = self.host.wait_for_workflow(workflow_id, timeout=30)
        return instance

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()


@pytest.fixture(params=["manual clock", "threaded"])
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    runner = Runner(request.param)
    yield runner
    runner.close()


# -- on_error on sagas and containers --------------------------------------------------------


def saga_with(on_error: Any, retry_interval: timedelta | None = None) -> Build:
    return lambda b: (
        b.start_with(log("start"))
        .saga(lambda s: s.start_with(log("book")).compensate_with(log("cancel")).then(fail_first("pay")))
        .on_error(on_error, retry_interval)
        .then(log("after"))
    )


def test_terminate_on_a_saga_applies_after_its_compensation(runner: Runner) -> None:
    instance = runner.run(saga_with(WorkflowStep.TERMINATE))
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.data["log"] == ["start", "book", "pay", "cancel"]


def test_retry_on_a_saga_runs_the_whole_saga_again_after_compensation(runner: Runner) -> None:
    instance = runner.run(saga_with(WorkflowStep.RETRY, SHORT))
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["start", "book", "pay", "cancel", "book", "pay", "after"]


def test_a_saga_without_on_error_still_goes_on_after_compensation(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.start_with(log("start"))
            .saga(lambda s: s.start_with(log("book")).compensate_with(log("cancel")).then(fail_first("pay")))
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["start", "book", "pay", "cancel", "after"]


def test_on_error_on_a_container_applies_to_the_steps_inside_it(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.start_with(log("start"))
            .for_each(lambda d, c: ["a", "b"], run_parallel=False)
            .do(lambda x: x.start_with(fail_first("work", times=99)))
            .on_error(WorkflowStep.TERMINATE)
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.data["log"] == ["start", "work"]


def test_a_steps_own_on_error_wins_over_its_containers(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.start_with(log("start"))
            .if_(lambda d, c: True)
            .do(lambda x: x.start_with(fail_first("work")).on_error(WorkflowStep.RETRY, SHORT))
            .on_error(WorkflowStep.TERMINATE)
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["start", "work", "work", "after"]


def test_compensate_on_an_inner_saga_passes_the_failure_to_the_outer_saga() -> None:
    test = WorkflowTestHost(
        workflow(
            lambda b: (
                b.start_with(log("start"))
                .saga(
                    lambda outer: (
                        outer.start_with(log("reserve"))
                        .compensate_with(log("release"))
                        .saga(
                            lambda inner: (
                                inner.start_with(log("book")).compensate_with(log("cancel")).then(fail_first("pay"))
                            )
                        )
                        .on_error(WorkflowStep.COMPENSATE)
                        .then(log("unreached"))
                    )
                )
                .then(log("after"))
            )
        )
    )
    instance = test.run_to_completion(test.start_workflow("Flow", data={"log": []}))
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["start", "reserve", "book", "pay", "cancel", "release", "after"]


def test_suspend_on_a_saga_parks_it_and_resume_runs_the_saga_again() -> None:
    test = WorkflowTestHost(workflow(saga_with(WorkflowStep.SUSPEND)))
    workflow_id = test.start_workflow("Flow", data={"log": []})
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    assert test.instance(workflow_id).data["log"] == ["start", "book", "pay", "cancel"]
    test.host.resume_workflow(workflow_id)
    instance = test.run_to_completion(workflow_id)
    assert instance.data["log"] == ["start", "book", "pay", "cancel", "book", "pay", "after"]
    assert [e.error_type for e in test.errors(workflow_id)] == ["builtins.RuntimeError", "liteflow.core.SagaError"]


# -- when blocks -----------------------------------------------------------------------------


def outcome(value: Any) -> Any:
    def step(context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.outcome(value)

    return step


def test_two_matching_when_blocks_both_run_and_what_follows_runs_once_after_both(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.start_with(outcome(2))
            .when(2)
            .do(lambda w: w.start_with(log("a1")).delay(lambda d, c: SHORT).then(log("a2")))
            .when(2)
            .do(lambda w: w.start_with(log("b")))
            .when(3)
            .do(lambda w: w.start_with(log("never")))
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert sorted(instance.data["log"]) == ["a1", "a2", "after", "b"]
    assert instance.data["log"][-1] == "after"


def test_an_outcome_no_when_matches_goes_on_after_the_blocks(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.start_with(outcome("medium"))
            .when("low")
            .do(lambda w: w.start_with(log("low")))
            .when("high")
            .do(lambda w: w.start_with(log("high")))
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["after"]


# -- run_parallel as a function --------------------------------------------------------------


def items_with_delays(run_parallel: Any) -> Build:
    return lambda b: (
        b.start_with(log("start"))
        .for_each(lambda d, c: [3, 1, 2], run_parallel=run_parallel)
        .do(lambda x: x.start_with(log("in")).delay(lambda d, c: SHORT * c.item).then(log("out")))
        .then(log("end"))
    )


def test_run_parallel_as_a_function_of_data_and_context_is_evaluated(runner: Runner) -> None:
    sequential = runner.run(items_with_delays(lambda d, c: d["parallel"]), {"parallel": False})
    assert sequential.data["log"] == ["start", "in:3", "out:3", "in:1", "out:1", "in:2", "out:2", "end"]


def test_run_parallel_function_returning_true_runs_the_items_at_once() -> None:
    test = WorkflowTestHost(workflow(items_with_delays(lambda d, c: True)))
    instance = test.run_to_completion(test.start_workflow("Flow", data={"log": []}))
    assert instance.data["log"] == ["start", "in:3", "in:1", "in:2", "out:1", "out:2", "out:3", "end"]


def test_run_parallel_that_is_neither_a_bool_nor_a_function_is_a_builder_error() -> None:
    with pytest.raises(BuilderError, match=r"step 1 \(for_each\): run_parallel must be a bool or a function"):
        WorkflowTestHost(workflow(items_with_delays("no")))


# -- any verb begins a block -----------------------------------------------------------------


def test_verbs_begin_a_workflow_and_blocks_without_a_no_op_step(runner: Runner) -> None:
    instance = runner.run(
        lambda b: (
            b.delay(lambda d, c: SHORT)
            .then(log("after-delay"))
            .if_(lambda d, c: True)
            .do(lambda x: x.for_each(lambda d, c: ["a"]).do(lambda y: y.start_with(log("item"))))
            .saga(lambda s: s.parallel().do(lambda p: p.start_with(log("p1"))).do(lambda p: p.start_with(log("p2"))))
            .then(log("end"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"][:2] == ["after-delay", "item:a"]
    assert sorted(instance.data["log"][2:4]) == ["p1", "p2"]
    assert instance.data["log"][4:] == ["end"]


def test_blocks_nested_in_a_for_each_see_its_item() -> None:
    test = WorkflowTestHost(
        workflow(
            lambda b: b.for_each(lambda d, c: ["a", "b"]).do(
                lambda x: (
                    x.if_(lambda d, c: True)
                    .do(lambda y: y.start_with(log("if")))
                    .schedule(lambda d, c: SHORT)
                    .do(lambda y: y.start_with(log("later")))
                    .then(outcome(1))
                    .when(1)
                    .do(lambda y: y.start_with(log("when")))
                )
            )
        )
    )
    instance = test.run_to_completion(test.start_workflow("Flow", data={"log": []}))
    assert sorted(instance.data["log"]) == ["if:a", "if:b", "later:a", "later:b", "when:a", "when:b"]
