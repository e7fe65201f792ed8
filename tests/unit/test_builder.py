"""Builder misuse is caught when the workflow is registered, with a BuilderError that says why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStep,
    configure_workflow_host,
)


class Step(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.next()


def register(build: Callable[[WorkflowBuilder], Any]) -> None:
    class Broken(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    configure_workflow_host().register_workflow(Broken())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: None, "has no steps"),
        (lambda b: b.start_with(Step).do(lambda x: x.start_with(Step)), "do() follows a container"),
        (lambda b: b.start_with(Step).input("value", 42), "needs a function"),
        (lambda b: b.start_with(Step).input("", lambda d, c: 1), "attribute name"),
        (lambda b: b.start_with(Step).output("value", "not callable"), "needs a function"),
        (lambda b: b.start_with(Step).input("v", lambda a, b, c: 1), "takes 3 arguments"),
        (lambda b: b.start_with(int), "not a StepBody subclass"),
        (lambda b: b.start_with(Step()), "not an instance"),
        (lambda b: b.start_with(42), "StepBody subclass or a function"),
        (lambda b: (b.start_with(Step), b.start_with(Step)), "start_with called twice"),
        (lambda b: b.start_with(Step).if_(lambda d, c: True).do(lambda x: None), "must add steps"),
        (lambda b: b.start_with(Step).wait_for("", lambda d, c: "k"), "event name"),
        (lambda b: b.start_with(Step).on_error("explode"), "unknown error behavior"),
        (lambda b: b.start_with(Step).attach("nowhere"), "no step has that id"),
        (lambda b: b.start_with(Step).id("a").then(Step).id("a"), "two steps have the id"),
        (lambda b: b.start_with(Step).branch(1, lambda x: x.start_with(Step)), "branch() follows decide"),
        (lambda b: b.start_with(Step).join(), "join() follows parallel"),
        (lambda b: b.start_with(Step).timeout(timedelta(0)), "positive timedelta"),
        (lambda b: b.start_with(Step).on_error(WorkflowStep.RETRY, 5), "timedelta"),
        (
            lambda b: (
                b.start_with(Step)
                .for_each(lambda d, c: [])
                .do(lambda x: x.start_with(Step))
                .do(lambda x: x.start_with(Step))
            ),
            "already has a do()",
        ),
    ],
)
def test_builder_misuse_raises_builder_error(build: Callable[[WorkflowBuilder], Any], message: str) -> None:
    with pytest.raises(BuilderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        register(build)


def test_nested_blocks_share_one_step_list_and_link_children() -> None:
    builder = WorkflowBuilder()
    builder.start_with(Step).for_each(lambda d, c: [1]).do(
        lambda x: x.start_with(Step).if_(lambda d, c: True).do(lambda y: y.start_with(Step))
    ).then(Step).on_error(WorkflowStep.RETRY, timedelta(seconds=1))
    definition = builder.build("Nested", 1)
    assert [s.id for s in definition.steps] == list(range(len(definition.steps)))
    foreach, first_in_block = definition.steps[1], definition.steps[2]
    assert foreach.children == [2]
    if_step = definition.steps[3]
    assert if_step.children == [4]
    assert [o.next_step for o in first_in_block.outcomes] == [3]
    assert definition.steps[-1].retry_interval == timedelta(seconds=1)
    assert [o.next_step for o in foreach.outcomes] == [definition.steps[-1].id]
