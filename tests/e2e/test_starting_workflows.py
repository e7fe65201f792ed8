"""Starting workflows: caller-chosen (idempotent) instance ids and priorities."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from liteflow.core import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)
from tests.conftest import Schema

RACER = Path(__file__).with_name("start_racer.py")


class Record(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["ran"] = context.workflow.data.get("ran", 0) + 1


class Order(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record)


class Invoice(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record)


@pytest.fixture
def host() -> WorkflowHost:
    made = configure_workflow_host()
    made.register_workflow(Order())
    made.register_workflow(Invoice())
    return made


def test_a_start_with_a_taken_id_returns_it_and_starts_nothing(host: WorkflowHost) -> None:
    first = host.start_workflow("Order", data={"n": 1}, instance_id="order-42")
    again = host.start_workflow("Order", data={"n": 2}, instance_id="order-42")
    assert first == again == "order-42"
    assert host.run_until_idle() > 0
    instance = host.get_workflow_instance("order-42")
    assert instance.data == {"n": 1, "ran": 1}  # the second call's data was ignored, it ran once
    assert [i.id for i in host.query_workflows(workflow_id="Order")] == ["order-42"]
    # Also once the first has completed: still the same instance, not a new run.
    assert host.start_workflow("Order", data={"n": 3}, instance_id="order-42") == "order-42"
    host.run_until_idle()
    assert host.get_workflow_instance("order-42").data == {"n": 1, "ran": 1}


def test_an_id_taken_by_another_definition_raises(host: WorkflowHost) -> None:
    host.start_workflow("Order", instance_id="doc-7")
    with pytest.raises(DuplicateWorkflowError, match="'doc-7' is taken by a workflow of definition 'Order'"):
        host.start_workflow("Invoice", instance_id="doc-7")


def test_threads_racing_on_one_id_all_get_it(host: WorkflowHost) -> None:
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def start(n: int) -> None:
        barrier.wait()
        ids.append(host.start_workflow("Order", data={"n": n}, instance_id="race"))

    threads = [threading.Thread(target=start, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert ids == ["race"] * 8
    assert len(host.query_workflows()) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "1 to 200 characters long, got 0"),
        ("x" * 201, "1 to 200 characters long, got 201"),
        ("order 42", "not ' '"),
        ("order/42?", r"not '/\?'"),
        ("é", "not 'é'"),
        (42, "must be a str, got int"),
    ],
)
def test_bad_instance_ids_are_refused(host: WorkflowHost, value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        host.start_workflow("Order", instance_id=value)  # type: ignore[arg-type]
    assert host.query_workflows() == []


def test_every_allowed_character_and_the_longest_id_are_accepted(host: WorkflowHost) -> None:
    for chosen in ("Az09._:-", "x" * 200):
        assert host.start_workflow("Order", instance_id=chosen) == chosen


@pytest.mark.parametrize("value", [1.5, True, "1", 1_000_001, -1_000_001])
def test_bad_priorities_are_refused(host: WorkflowHost, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="priority"):
        host.start_workflow("Order", priority=value)  # type: ignore[arg-type]


def test_three_processes_racing_on_postgres_create_one_instance(postgres_url: str, schema: Schema) -> None:
    store = f"{postgres_url}?schema={schema()}&max_size=2"
    racers = [
        subprocess.Popen(
            [sys.executable, str(RACER), store, f"p{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        for n in range(3)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "READY"
        for racer in racers:  # all ready: let them go as close together as pipes allow
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        answers = [racer.communicate(timeout=60)[0].split() for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert answers == [["STARTED", "order-42"]] * 3
    # Read by a host that is not started: a started one would take the instance up and suspend it
    # (Order is not registered on it) while the query runs (seen once in CI).
    reader = configure_workflow_host(store)
    try:
        stored = reader.query_workflows()
    finally:
        for provider in (reader.queue, reader.lock, reader.persistence):  # a host never started closes none
            provider.close()
    assert [i.id for i in stored] == ["order-42"]
    assert stored[0].status is WorkflowStatus.RUNNABLE
    assert stored[0].data["node"] in {"p0", "p1", "p2"}


# -- priorities --------------------------------------------------------------------------------


class Mark(StepBody):
    """Records the instance's label; the first one ("blocker") holds the only worker until released."""

    order: ClassVar[list[str]] = []
    entered = threading.Event()
    release = threading.Event()

    def run(self, context: StepExecutionContext) -> None:
        label = context.workflow.data["label"]
        if label == "blocker":
            Mark.entered.set()
            assert Mark.release.wait(30), "never released"
        Mark.order.append(label)


class Marked(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Mark)


def _queue_url(kind: str, request: pytest.FixtureRequest) -> str | None:
    if kind == "memory":
        return None
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return f"{url}?schema={request.getfixturevalue('schema')()}&max_size=2"
    if kind == "redis":
        return f"{request.getfixturevalue('redis_url')}?prefix=lf-prio-{os.urandom(6).hex()}"
    url = request.getfixturevalue("amqp_url")
    return f"{url}?prefix=lf-prio-{os.urandom(6).hex()}"


@pytest.mark.parametrize("kind", ["memory", "postgres", "redis", "rabbitmq"])
def test_a_saturated_worker_runs_higher_priorities_first(kind: str, request: pytest.FixtureRequest) -> None:
    Mark.order, Mark.entered, Mark.release = [], threading.Event(), threading.Event()
    queue = _queue_url(kind, request)
    with configure_workflow_host(None, queue, max_concurrent_workflows=1, poll_interval=60) as host:
        host.register_workflow(Marked())
        host.start_workflow("Marked", data={"label": "blocker"})
        assert Mark.entered.wait(10), "the blocker never started"
        started = [
            host.start_workflow("Marked", data={"label": label}, priority=priority)
            for label, priority in [("low-1", 0), ("urgent", 5), ("low-2", 0), ("later", -1), ("high", 2)]
        ]
        Mark.release.set()
        for workflow_id in started:
            host.wait_for_workflow(workflow_id, timeout=30)
    assert Mark.order == ["blocker", "urgent", "high", "low-1", "low-2", "later"]


def test_the_test_host_starts_idempotently_too() -> None:
    from liteflow.testing import WorkflowTestHost

    test = WorkflowTestHost(Order())
    assert test.start_workflow("Order", data={"n": 1}, instance_id="o-1", priority=4) == "o-1"
    assert test.start_workflow("Order", data={"n": 2}, instance_id="o-1") == "o-1"
    instance = test.instance("o-1")
    assert instance.data == {"n": 1, "ran": 1} and instance.priority == 4
