"""Per-step limits across workflows: ``.concurrency(name, limit)`` and ``.rate_limit(...)``."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from liteflow.core import (
    BuilderError,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.testing import WorkflowTestHost


class Gauge:
    """How many payment steps run at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def pay(self, context: StepExecutionContext) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.03)  # the work of the step, so that steps overlap unless they are kept apart
        with self.lock:
            self.now -= 1


def test_at_most_limit_steps_sharing_a_name_run_at_once_across_workflows() -> None:
    gauge = Gauge()

    class Orders(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(gauge.pay).concurrency("payments", 2)

    class Refunds(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: None).then(gauge.pay).concurrency("payments", 2)

    class Free(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: None)

    host = configure_workflow_host(max_concurrent_workflows=4, poll_interval=timedelta(seconds=0.2))
    for workflow in (Orders(), Refunds(), Free()):
        host.register_workflow(workflow)
    with host:
        ids = [host.start_workflow(kind) for kind in ("Orders", "Refunds") * 6]
        free = host.start_workflow("Free")  # not held up by the parked steps
        assert host.wait_for_workflow(free, timeout=10).status is WorkflowStatus.COMPLETE
        for workflow_id in ids:
            assert host.wait_for_workflow(workflow_id, timeout=30).status is WorkflowStatus.COMPLETE
    assert gauge.most == 2


def test_a_failing_step_gives_its_slot_back() -> None:
    calls: list[int] = []

    class Flaky(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: _fail_once(calls)).concurrency("api", 1)

    test = WorkflowTestHost(Flaky())
    first = test.start_workflow("Flaky")
    second = test.start_workflow("Flaky")
    assert test.run_to_completion(second).status is WorkflowStatus.COMPLETE  # the slot was free
    assert test.run_to_completion(first).status is WorkflowStatus.COMPLETE
    assert test.host.lock.acquire("liteflow.step-slot:api:0")  # nobody holds it


def _fail_once(calls: list[int]) -> None:
    calls.append(1)
    if len(calls) == 1:
        raise RuntimeError("first call fails")


def test_a_rate_limit_spreads_starts_over_windows() -> None:
    runs: list[float] = []
    clock: list[WorkflowTestHost] = []

    class Calls(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: runs.append(clock[0].clock.now.timestamp())).rate_limit(
                "payments-api", 3, per=timedelta(seconds=1)
            )

    test = WorkflowTestHost(Calls())
    clock.append(test)
    start = test.clock.now.timestamp()
    ids = [test.start_workflow("Calls") for _ in range(7)]
    for _ in range(3):
        test.advance(timedelta(seconds=1))
    assert [round(t - start) for t in runs] == [0, 0, 0, 1, 1, 1, 2]
    assert all(test.instance(i).status is WorkflowStatus.COMPLETE for i in ids)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: b.start_with(lambda c: None).concurrency("", 2), "needs a non-empty name"),
        (lambda b: b.start_with(lambda c: None).concurrency("p", 0), "limit must be an int of at least 1, got 0"),
        (lambda b: b.start_with(lambda c: None).rate_limit("p", 5, per=5), "positive timedelta per, got 5"),
        (lambda b: b.start_with(lambda c: None).concurrency("p", 1).concurrency("p", 2), "already set"),
        (lambda b: b.start_with(lambda c: None).if_(lambda d: True).concurrency("p", 1), "not on if_"),
    ],
)
def test_bad_limits_are_refused_when_built(build, message: str) -> None:  # type: ignore[no-untyped-def]
    class Bad(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    with pytest.raises(BuilderError, match=message):
        WorkflowTestHost(Bad())
