"""What `liteflow show` and the dashboard say about a loop's folded rounds (no process started: the
render functions on a test host's instance)."""

from __future__ import annotations

import io

from rich.console import Console

from liteflow.cli._render import Steps, compacted_steps, show_instance
from liteflow.core import StepBody, StepExecutionContext, Workflow, WorkflowBuilder
from liteflow.testing import WorkflowTestHost


class Count(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["i"] += 1


class Counting(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: None).while_(lambda data, context: data["i"] < 1200).do(
            lambda block: block.start_with(Count).name("count")
        )


def test_show_lists_what_the_folded_rounds_did_per_step() -> None:
    test = WorkflowTestHost(Counting())
    instance = test.run_to_completion(test.start_workflow("Counting", data={"i": 0}))
    steps = Steps(test.host)
    rows = compacted_steps(instance, steps)
    assert [(r["step"], r["runs"], r["statuses"], r["failed_attempts"]) for r in rows] == [
        ("count", 1199, {"complete": 1199}, 0)
    ]
    assert rows[0]["first_started"] is not None and rows[0]["last_ended"] is not None
    out = io.StringIO()
    show_instance(Console(file=out, width=200), instance, steps, [])
    assert "Earlier loop rounds (compacted)" in out.getvalue()
    assert "count (#2): 1,199 runs (complete 1,199)" in out.getvalue()


def test_an_instance_without_folded_rounds_shows_none() -> None:
    test = WorkflowTestHost(Counting())
    instance = test.run_to_completion(test.start_workflow("Counting", data={"i": 1199}))
    assert instance.compacted is None and compacted_steps(instance, Steps(test.host)) == []
