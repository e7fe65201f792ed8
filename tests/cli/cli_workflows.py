"""The workflows the command-line tests run in a real ``liteflow worker`` process.

Steps talk to the test through files in ``$LITEFLOW_TEST_DIR``: a step appends what it did to
``effects.log`` (one line per run, so the test sees how often each step ran), ``Charge`` fails while
``broken-<ref>`` exists, and ``Slow`` writes ``<workflow id>.started`` and then waits for
``<workflow id>.release``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from liteflow.core import ErrorBehavior, StepBody, StepExecutionContext, Workflow, WorkflowBuilder


def test_dir() -> Path:
    return Path(os.environ["LITEFLOW_TEST_DIR"])


def record(context: StepExecutionContext, label: str) -> None:
    """Note a step's run in the data (what was saved) and in the effects log (what happened)."""
    context.workflow.data.setdefault("trail", []).append(label)
    with open(test_dir() / "effects.log", "a") as log:
        log.write(f"{context.workflow.id} {label}\n")


class Reserve(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "reserve")


class Unreserve(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "unreserve")


class Charge(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        if (test_dir() / f"broken-{context.workflow.data['ref']}").exists():
            raise RuntimeError("card declined")
        record(context, "charge")


class Ship(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "ship")


class Order(Workflow):
    """reserve (#0, undone by #1 when compensated) -> charge (#2, suspends the workflow when it fails) -> ship (#3)"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Reserve)
            .name("reserve")
            .compensate_with(Unreserve)
            .then(Charge)
            .on_error(ErrorBehavior.SUSPEND)
            .then(Ship)
            .name("ship")
        )


class Greet(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "greet")


class Received(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "received")


class Greeting(Workflow):
    """greet -> wait for ("go", data["key"]) -> received (the event's data lands in data["got"])"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Greet)
            .wait_for("go", lambda data, context: data["key"])
            .output("got", lambda step: step.event_data)
            .then(Received)
        )


class SlowStep(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "slow:start")
        (test_dir() / f"{context.workflow.id}.started").touch()
        release = test_dir() / f"{context.workflow.id}.release"
        deadline = time.monotonic() + 60
        while not release.exists():  # the test decides when this step ends
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released the step")
            time.sleep(0.02)
        record(context, "slow:end")


class After(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        record(context, "after")


class Slow(Workflow):
    """slow (runs until the test releases it) -> after"""

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(SlowStep).then(After)


class Refund(Workflow):
    """asks data["manager"] whether to refund; "yes" records refunded, "no" records kept"""

    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.user_task("Refund order?", assigned_to=lambda data, context: data["manager"])
            .with_option("yes", "Refund it", lambda then: then.start_with(lambda c: record(c, "refunded")))
            .with_option("no", "Keep it", lambda then: then.start_with(lambda c: record(c, "kept")))
        )
