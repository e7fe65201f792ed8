"""Concurrency limits per workflow on the memory host: queueing, order, keys, and no slot leaks."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from liteflow.core import (
    Concurrency,
    ErrorBehavior,
    InvalidArgumentError,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._limits import RECHECK
from liteflow.testing import WorkflowTestHost

UTC = timezone.utc


class Limited(Workflow):
    """Starts, waits for ``go`` with its own name as key, then ends (or fails when told to)."""

    def concurrency(self) -> Concurrency:
        return Concurrency(limit=2)

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: None).wait_for("go", lambda data, context: data["name"]).output(
            "answer", lambda step: step.event_data
        ).then(_finish).on_error(ErrorBehavior.TERMINATE)


def _finish(context: StepExecutionContext) -> None:
    if context.workflow.data["answer"] == "fail":
        raise RuntimeError("told to fail")


class PerCustomer(Limited):
    def concurrency(self) -> Concurrency:
        return Concurrency(limit=1, key=lambda data: data["customer"])


def start(test: WorkflowTestHost, workflow: str, name: str, **data: Any) -> str:
    test.clock.advance(timedelta(milliseconds=1))  # start order is creation time (ties go by id)
    return test.start_workflow(workflow, data={"name": name, **data})


def running(test: WorkflowTestHost, ids: list[str]) -> list[str]:
    """Those of ``ids`` that hold a slot: runnable, not queued."""
    found = [test.instance(i) for i in ids]
    return [i.id for i in found if i.status is WorkflowStatus.RUNNABLE and not i.queued]


def queued(test: WorkflowTestHost, ids: list[str]) -> list[str]:
    return [i for i in ids if test.instance(i).queued]


def test_instances_over_the_limit_wait_and_start_in_start_order() -> None:
    test = WorkflowTestHost(Limited())
    ids = [start(test, "Limited", f"w{n}") for n in range(5)]
    assert running(test, ids) == ids[:2]
    assert queued(test, ids) == ids[2:]
    waiting = test.instance(ids[2])
    assert waiting.execution_pointers[0].start_time is None, "a queued instance runs no step"
    listed = {i.id: i.queued for i in test.host.query_workflows(workflow_id="Limited")}
    assert listed == {i: i in ids[2:] for i in ids}, "query_workflows tells them apart"

    test.publish_event("go", "w1", "ok")
    assert test.instance(ids[1]).status is WorkflowStatus.COMPLETE
    assert running(test, ids) == [ids[0], ids[2]], "the oldest waiter took the free slot"
    test.publish_event("go", "w0", "ok")
    assert running(test, ids) == [ids[2], ids[3]]
    for name in ("w2", "w3", "w4"):
        test.publish_event("go", name, "ok")
    assert all(test.instance(i).status is WorkflowStatus.COMPLETE for i in ids)


def test_a_key_limits_each_customer_on_its_own() -> None:
    test = WorkflowTestHost(PerCustomer())
    a1 = start(test, "PerCustomer", "a1", customer="A")
    a2 = start(test, "PerCustomer", "a2", customer="A")
    b1 = start(test, "PerCustomer", "b1", customer="B")
    assert running(test, [a1, a2, b1]) == [a1, b1]
    assert queued(test, [a1, a2, b1]) == [a2]
    test.publish_event("go", "a1", "ok")
    assert running(test, [a2, b1]) == [a2, b1]


@pytest.mark.parametrize("end", ["terminate", "suspend", "error"])
def test_a_slot_is_freed_when_its_holder_stops_running(end: str) -> None:
    test = WorkflowTestHost(PerCustomer())
    first = start(test, "PerCustomer", "first", customer="A")
    second = start(test, "PerCustomer", "second", customer="A")
    assert queued(test, [first, second]) == [second]
    if end == "terminate":
        test.host.terminate_workflow(first)
    elif end == "suspend":
        test.host.suspend_workflow(first)
    else:
        test.publish_event("go", "first", "fail")
        assert test.instance(first).status is WorkflowStatus.TERMINATED
    test.run_until_idle()
    assert running(test, [first, second]) == [second]
    if end == "suspend":  # resumed, it waits for a slot like a newcomer
        test.host.resume_workflow(first)
        test.run_until_idle()
        assert queued(test, [first, second]) == [first]
        test.publish_event("go", "second", "ok")
        assert running(test, [first]) == [first]


def test_a_slot_whose_holder_ended_without_releasing_it_is_taken_over() -> None:
    """A host that crashed between saving the end of an instance and releasing its slot."""
    test = WorkflowTestHost(PerCustomer())
    first = start(test, "PerCustomer", "first", customer="A")
    second = start(test, "PerCustomer", "second", customer="A")
    holder = test.instance(first)
    holder.status, holder.next_execution = WorkflowStatus.COMPLETE, None
    test.host.persistence.persist_workflow(holder)  # the store says it ended; nobody released its slot
    test.advance(RECHECK)  # the waiter looks again
    assert running(test, [second]) == [second]


def test_a_queued_instance_holds_no_worker() -> None:
    class Free(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(lambda context: None)

    host = configure_workflow_host(max_concurrent_workflows=1, poll_interval=timedelta(seconds=0.2))
    host.register_workflow(PerCustomer())
    host.register_workflow(Free())
    with host:
        ids = [host.start_workflow("PerCustomer", data={"name": f"q{n}", "customer": "A"}) for n in range(20)]
        free = host.start_workflow("Free")
        assert host.wait_for_workflow(free, timeout=10).status is WorkflowStatus.COMPLETE
        done = threading.Event()
        host.on_lifecycle_event(lambda event: done.set() if event.workflow_id == ids[0] else None)
        host.publish_event("go", "q0", "ok")
        assert host.wait_for_workflow(ids[0], timeout=10).status is WorkflowStatus.COMPLETE

        def second_runs() -> WorkflowInstance | None:
            instance = host.get_workflow_instance(ids[1])
            return instance if not instance.queued else None

        deadline = datetime.now(UTC) + RECHECK * 0.75
        while second_runs() is None:  # woken by the release, not by its recheck
            assert datetime.now(UTC) < deadline, "the next waiter was not started"
            done.wait(0.05)
        assert [i for i in ids[2:] if not host.get_workflow_instance(i).queued] == []


def test_a_key_that_cannot_be_computed_suspends_the_instance() -> None:
    test = WorkflowTestHost(PerCustomer())
    broken = test.start_workflow("PerCustomer", data={"name": "x"})  # no customer
    assert test.instance(broken).status is WorkflowStatus.SUSPENDED
    [error] = test.errors(broken)
    assert "concurrency key cannot be computed: KeyError" in error.message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"limit": 0}, "at least 1, got 0"), ({"limit": "2"}, "got '2'"), ({"limit": 1, "key": "customer"}, "function")],
)
def test_bad_limits_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Concurrency(**arguments)


def test_concurrency_must_return_a_concurrency() -> None:
    class Wrong(Limited):
        def concurrency(self) -> Any:
            return 3

    with pytest.raises(InvalidArgumentError, match=r"Wrong.concurrency\(\) must return a Concurrency or None, got 3"):
        WorkflowTestHost(Wrong())
