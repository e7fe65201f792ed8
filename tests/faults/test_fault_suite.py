"""The fault suite: 160 workflows in flight (steps, a sleep, an event wait) while the backend is cut
for 8 s through a loopback proxy (the real servers are never touched), once per provider mix:

- PostgreSQL as store, queue and lock;
- SQLite store with Redis as queue and lock;
- SQLite store with a RabbitMQ queue.

A client thread publishes the workflows' events one by one over about 10 s, retrying when a
call raises, as a real client would. The test asserts that every workflow completes with the right
data, that a step ran twice only if its pass was in flight when the backend went away (at most one
pass per worker thread), that ``health()`` went not ok during the outage and ok again after it,
and that no host thread died. It prints, per scenario: workflows in flight at the cut, completed,
duplicated step runs, seconds until work resumed and until health was ok after the backend
returned, and what ``health()`` reported.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    LifecycleEvent,
    LifecycleEventType,
    LiteFlowError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._models import new_id
from liteflow.testing import FaultProxy

pytestmark = pytest.mark.faults

WORKFLOWS = 160
WORKERS = 4
STEP_TIME = 0.02  # long enough that the cut usually lands inside some steps
NAP = timedelta(seconds=1)
LABELS = ["a", "b", "c", "d"]
CUT_AFTER_RUNS = WORKFLOWS * 3 // 2  # every "a" and about half the "b": the workers are busy
CUT_SECONDS = 8.0
IN_FLIGHT_MARGIN = 1.0  # s: a pass whose step ended just before the cut may still be saving
COMPLETION_TIMEOUT = 90.0  # s after the backend returned
PUBLISH_EVERY = 0.06  # s between two events a client publishes: 160 of them take about 10 s
LEASE = 2  # s, lock lease: a lock whose release was cut lapses by then
VISIBILITY = 3  # s, queue visibility timeout


@dataclass(frozen=True)
class Run:
    workflow_id: str
    label: str
    start: float
    end: float


@dataclass
class Journal:
    """What happened, as the test saw it (monotonic seconds)."""

    runs: list[Run] = field(default_factory=list)
    completed: dict[str, float] = field(default_factory=dict)
    publish_errors: Counter[str] = field(default_factory=Counter)
    published: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.runs.clear()
            self.completed.clear()
            self.publish_errors.clear()
            self.published.clear()

    def ran(self, run: Run) -> None:
        with self.lock:
            self.runs.append(run)

    def count(self) -> int:
        with self.lock:
            return len(self.runs)


journal = Journal()


class Mark(StepBody):
    """A step with a side effect (its run, in the journal) that appends its label to the trail."""

    def __init__(self) -> None:
        self.label = ""
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> None:
        start = time.monotonic()
        time.sleep(STEP_TIME)
        journal.ran(Run(context.workflow.id, self.label, start, time.monotonic()))
        self.trail = [*self.trail, self.label]


def mark(builder: Any, label: str, first: bool = False) -> Any:
    step = builder.start_with(Mark) if first else builder.then(Mark)
    return (
        step.input("label", lambda data, context: label)
        .input("trail", lambda data, context: data["trail"])
        .output("trail", lambda step: step.trail)
    )


class Faulted(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(mark(builder, "a", first=True), "b").delay(lambda data, context: NAP)
        step = mark(step, "c").wait_for("go", lambda data, context: data["key"])
        mark(step.output("got", lambda step: step.event_data), "d")


# -- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    service_fixture: str
    urls: Callable[[str, str, Path], tuple[str, str | None, str | None]]
    """(proxied server URL, unique name, temporary directory) -> store, queue and lock URLs."""


def _postgres(server: str, name: str, tmp: Path) -> tuple[str, str | None, str | None]:
    base = f"{server}?schema={name}"
    return base, f"{base}&visibility_timeout={VISIBILITY}", f"{base}&lease={LEASE}"


def _sqlite_redis(server: str, name: str, tmp: Path) -> tuple[str, str | None, str | None]:
    return (
        f"sqlite:///{tmp / 'store.db'}",
        f"{server}?prefix={name}&visibility_timeout={VISIBILITY}",
        f"{server}?prefix={name}&lease={LEASE}",
    )


def _sqlite_rabbitmq(server: str, name: str, tmp: Path) -> tuple[str, str | None, str | None]:
    return f"sqlite:///{tmp / 'store.db'}", f"{server}?prefix={name}&heartbeat=5", None


SCENARIOS = [
    Scenario("postgresql", "postgres_url", _postgres),
    Scenario("sqlite+redis", "redis_url", _sqlite_redis),
    Scenario("sqlite+rabbitmq", "amqp_url", _sqlite_rabbitmq),
]


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A schema, key prefix or queue prefix of this test alone, removed afterwards."""
    name = f"lf_fault_{new_id()[:8]}".lower()
    yield name
    scenario: Scenario = request.node.callspec.params["scenario"]
    server = request.getfixturevalue(scenario.service_fixture)
    if scenario.service_fixture == "postgres_url":
        import psycopg

        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    elif scenario.service_fixture == "redis_url":
        import redis

        client = redis.Redis.from_url(server)
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    else:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(server))
        channel = connection.channel()
        for queue in ("workflow", "event"):
            channel.queue_delete(queue=f"{name}.{queue}")
        connection.close()


# -- the client and the health watcher --------------------------------------------------------


def publish_over_time(host: WorkflowHost, keys: list[str], stop: threading.Event) -> None:
    """One client publishing the workflows' events one after the other, ``PUBLISH_EVERY`` apart,
    so that many land in the outage: it retries a call that raised, as a client should."""
    started = time.monotonic()
    for index, key in enumerate(keys):
        if stop.wait(max(0.0, started + index * PUBLISH_EVERY - time.monotonic())):
            return
        while not stop.is_set():
            try:
                host.publish_event("go", key, f"paid-{key}")
                journal.published.append(time.monotonic())
                break
            except LiteFlowError as error:
                journal.publish_errors[type(error).__name__] += 1
                stop.wait(0.2)


@dataclass
class HealthLog:
    samples: list[tuple[float, bool, tuple[str, ...]]] = field(default_factory=list)
    not_live: int = 0

    def watch(self, host: WorkflowHost, stop: threading.Event) -> None:
        while not stop.is_set():
            health = host.health()
            failing = tuple(sorted(name for name, part in health.components.items() if not part.ok))
            self.samples.append((time.monotonic(), health.ok, failing))
            self.not_live += not health.live
            stop.wait(0.1)

    def first_not_ok(self, after: float) -> float | None:
        return next((t for t, ok, _ in self.samples if t >= after and not ok), None)

    def ok_again(self, after: float) -> float | None:
        """The start of the last stretch of ok samples after ``after``."""
        start = None
        for t, ok, _ in self.samples:
            if t >= after:
                start = (start or t) if ok else None
        return start

    def failing_during(self, start: float, end: float) -> list[str]:
        return sorted({name for t, ok, names in self.samples if start <= t <= end for name in names})

    def recovery(self, after: float) -> str:
        """Each component that was failing after ``after``, with when it was last seen failing."""
        last: dict[str, float] = {}
        for t, _, names in self.samples:
            if t >= after:
                last.update(dict.fromkeys(names, t))
        return ", ".join(f"{name} {t - after:.1f} s" for name, t in sorted(last.items(), key=lambda item: item[1]))


# -- the test ---------------------------------------------------------------------------------


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_workflows_in_flight_survive_a_backend_outage(
    scenario: Scenario,
    unique_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = request.getfixturevalue(scenario.service_fixture)
    journal.reset()
    with FaultProxy.for_url(server) as proxy:
        store, queue, lock = scenario.urls(proxy.url(server), unique_name, tmp_path)
        host = configure_workflow_host(
            store, queue, lock, max_concurrent_workflows=WORKERS, poll_interval=0.5, stop_timeout=5
        )
        host.register_workflow(Faulted())
        host.on_lifecycle_event(lambda event: _completed(event))
        stop = threading.Event()
        health_log = HealthLog()
        with host:
            threads_at_start = list(host._workers.threads)
            keys = {}
            for index in range(WORKFLOWS):
                key = f"k{index}"
                keys[host.start_workflow("Faulted", data={"key": key, "trail": [], "got": None})] = key
            helpers = [
                threading.Thread(target=publish_over_time, args=(host, list(keys.values()), stop), daemon=True),
                threading.Thread(target=health_log.watch, args=(host, stop), daemon=True),
            ]
            for helper in helpers:
                helper.start()
            try:
                _wait(lambda: journal.count() >= CUT_AFTER_RUNS, 60, "the work to get going")
                cut_at = time.monotonic()
                proxy.cut()
                in_flight = WORKFLOWS - sum(1 for t in journal.completed.values() if t < cut_at)
                stop.wait(CUT_SECONDS)
                restored_at = time.monotonic()
                proxy.restore()
                _wait(
                    lambda: len(journal.completed) == WORKFLOWS,
                    COMPLETION_TIMEOUT,
                    "every workflow to complete",
                    lambda: _stragglers(host, keys),
                )
                finished_at = time.monotonic()
                _wait(lambda: host.health().ok, 30, "health to be ok again")
            finally:
                stop.set()
                for helper in helpers:
                    helper.join(5)
            threads_at_end = list(host._workers.threads)
            dead_at_end = [t.name for t in threads_at_end if not t.is_alive()]
            if not host._timers.is_alive():
                dead_at_end.append("liteflow-timers")
            final = {wid: host.get_workflow_instance(wid) for wid in keys}

    # Every workflow completed, with the right data.
    assert all(instance.status is WorkflowStatus.COMPLETE for instance in final.values())
    for workflow_id, instance in final.items():
        assert instance.data["trail"] == LABELS, (workflow_id, instance.data)
        assert instance.data["got"] == f"paid-{keys[workflow_id]}"
    # A step ran twice only if its pass was in flight at the cut, and at most one pass per worker.
    runs: dict[tuple[str, str], list[Run]] = {}
    for run in journal.runs:
        runs.setdefault((run.workflow_id, run.label), []).append(run)
    assert set(runs) == {(wid, label) for wid in keys for label in LABELS}
    duplicated = {step: sorted(r, key=lambda r: r.start) for step, r in runs.items() if len(r) > 1}
    for step, step_runs in duplicated.items():
        first = step_runs[0]
        assert len(step_runs) == 2, (step, step_runs)
        assert first.start < restored_at and first.end >= cut_at - IN_FLIGHT_MARGIN, (step, step_runs, cut_at)
    assert len(duplicated) <= WORKERS, duplicated
    # A call that failed said why, in the one way a client can act on: try again later.
    assert set(journal.publish_errors) <= {"ProviderUnavailableError"}, journal.publish_errors
    # Health went not ok during the outage and ok again after it.
    went_bad = health_log.first_not_ok(cut_at)
    assert went_bad is not None and went_bad < restored_at, "health() stayed ok through the outage"
    ok_again = health_log.ok_again(restored_at)
    assert ok_again is not None
    assert health_log.not_live == 0  # an outage never made the host look dead
    # No thread was lost: the same threads ran from start to end, none had to be restarted.
    assert dead_at_end == []
    assert [id(t) for t in threads_at_end] == [id(t) for t in threads_at_start]

    resumed = min((r.start for r in journal.runs if r.start >= restored_at), default=finished_at)
    with capsys.disabled():
        print(
            f"\n[fault suite] {scenario.name}: cut {restored_at - cut_at:.1f} s with {in_flight} of {WORKFLOWS} "
            f"workflows in flight; completed {sum(i.status is WorkflowStatus.COMPLETE for i in final.values())}; "
            f"duplicated step runs {sum(len(r) - 1 for r in duplicated.values())}; "
            f"after the backend returned: steps ran again in {resumed - restored_at:.1f} s, all done in "
            f"{finished_at - restored_at:.1f} s, health ok in {ok_again - restored_at:.1f} s; "
            f"health not ok {went_bad - cut_at:.1f} s after the cut, failing: "
            f"{', '.join(health_log.failing_during(cut_at, restored_at))}; "
            f"last seen failing after the restore: {health_log.recovery(restored_at)}; "
            f"events published during the outage: "
            f"{sum(cut_at <= t <= restored_at for t in journal.published)} (calls that raised: "
            f"{dict(journal.publish_errors) or 'none'})"
        )


def _completed(event: LifecycleEvent) -> None:
    if event.type is LifecycleEventType.WORKFLOW_COMPLETED:
        with journal.lock:
            journal.completed.setdefault(event.workflow_id, time.monotonic())


def _wait(condition: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what} {detail()}"
        time.sleep(0.05)


def _stragglers(host: WorkflowHost, keys: dict[str, str]) -> str:
    """What the unfinished workflows are doing, for the failure message."""
    late = [host.get_workflow_instance(wid) for wid in keys if wid not in journal.completed]
    return f"({len(late)} not done; health {host.health()}; first: {late[:3]})"
