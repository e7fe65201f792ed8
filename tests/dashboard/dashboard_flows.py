"""Workflows the dashboard tests run: one that waits for an event (so it stays on a step), one
that carries hostile text in its data, one whose step fails."""

from __future__ import annotations

from typing import Any

from liteflow.core import ErrorBehavior, ExecutionResult, StepBody, StepExecutionContext, Workflow, WorkflowBuilder


class Prepare(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data["prepared"] = True
        return ExecutionResult.next()


class Ship(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data["shipped"] = True
        return ExecutionResult.next()


class OrderWorkflow(Workflow):
    """Prepare, then wait for ``approved`` keyed by the order id, then ship."""

    def id(self) -> str:
        return "order"

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Prepare).wait_for("approved", lambda data, context: data["order"]).then(Ship)


class Explode(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        raise RuntimeError(f"cannot handle {context.workflow.data['label']}")


class FailingWorkflow(Workflow):
    """Fails its one step and is suspended: it has an error with a traceback."""

    def id(self) -> str:
        return "failing"

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Explode).on_error(ErrorBehavior.SUSPEND)


class QuickWorkflow(Workflow):
    """Two steps that finish at once: fills the overview's chart with completed workflows."""

    def id(self) -> str:
        return "quick"

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Prepare).then(Ship)


class NestedWorkflow(Workflow):
    """Containers inside containers: for drawing, not for running."""

    def id(self) -> str:
        return "nested"

    def build(self, builder: WorkflowBuilder) -> None:
        loop = builder.start_with(Prepare).while_(lambda data, context: data["again"])
        after = loop.do(
            lambda body: (
                body.start_with(Prepare)
                .for_each(lambda data, context: [1, 2])
                .do(lambda each: each.start_with(Ship).then(Prepare))
            )
        )
        branches = after.parallel().do(lambda one: one.start_with(Ship)).do(lambda two: two.start_with(Prepare))
        branches.join().then(Ship)


WORKFLOWS: list[Any] = [OrderWorkflow, FailingWorkflow, QuickWorkflow]
