"""Workflows the observability tests run, in a module of their own so a host process can import them."""

from __future__ import annotations

import logging

from liteflow.core import StepBody, StepExecutionContext, Workflow, WorkflowBuilder, WorkflowStep

step_log = logging.getLogger("tests.observability.steps")


class Greet(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        step_log.info("greeting")


class Explode(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        raise RuntimeError("boom")


class Greets(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Greet).name("greet").wait_for("go", lambda data, context: "k").then(Greet).name("again")


class Fails(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Greet).name("greet").then(Explode).name("explode").on_error(WorkflowStep.TERMINATE)
