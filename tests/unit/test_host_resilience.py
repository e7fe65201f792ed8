"""The host's own resilience, without services: the timer and async threads survive errors, a dead
host thread is restarted, failures are traced to the provider that raised them, health reads."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest
from blocking_steps import Gate
from polling import wait_until

from liteflow.core import (
    ComponentHealth,
    ConfigurationError,
    Health,
    LocalLockProvider,
    MemoryPersistenceProvider,
    ProviderUnavailableError,
    QueueType,
    SingleNodeQueueProvider,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._config import with_provider_timeout
from liteflow.core._health import WORKER_GROUPS, HealthMonitor, provider_failure
from liteflow.core._timers import AsyncRunner, TimerQueue

# -- timer and async threads ------------------------------------------------------------------


def test_timer_keeps_an_item_whose_fire_failed_and_fires_it_once_the_backend_answers() -> None:
    failures: list[Exception] = []
    fired = threading.Event()
    attempts = 0

    def fire(item: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ProviderUnavailableError("queue down")
        fired.set()

    timers: TimerQueue[str] = TimerQueue(fire, on_error=failures.append)
    timers.start()
    try:
        timers.call_later(0.0, "wf-1")
        assert fired.wait(5.0)
        assert attempts == 4 and len(failures) == 3
        assert timers.is_alive()
        # After a success the pause is over: a new item fires at once.
        fired.clear()
        started = time.monotonic()
        timers.call_later(0.0, "wf-2")
        assert fired.wait(5.0)
        assert time.monotonic() - started < 1.0
    finally:
        timers.stop()


def test_timer_pauses_between_failed_fires_instead_of_spinning() -> None:
    calls: list[float] = []

    def fire(item: int) -> None:
        calls.append(time.monotonic())
        raise ProviderUnavailableError("queue down")

    timers: TimerQueue[int] = TimerQueue(fire)
    timers.start()
    try:
        for item in range(50):
            timers.call_later(0.0, item)
        wait_until(lambda: len(calls) >= 5)
    finally:
        timers.stop()
    # Each failure pauses the whole timer, so 50 due items do not cost 50 calls at once.
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert all(gap >= 0.02 for gap in gaps[:4]), gaps


def test_timer_hook_that_raises_does_not_stop_the_timer() -> None:
    fired = threading.Event()

    def broken_hook() -> None:
        raise RuntimeError("hook bug")

    timers: TimerQueue[str] = TimerQueue(lambda item: fired.set(), on_success=broken_hook)
    timers.start()
    try:
        timers.call_later(0.0, "a")
        assert fired.wait(5.0)
        fired.clear()
        timers.call_later(0.0, "b")
        assert fired.wait(5.0)
        assert timers.is_alive()
    finally:
        timers.stop()


def test_async_loop_survives_a_step_that_raises_system_exit() -> None:
    runner = AsyncRunner()

    async def leave() -> None:
        raise SystemExit(3)

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    try:
        with pytest.raises(SystemExit):
            runner.run(leave())
        assert runner.run(answer()) == 42
    finally:
        runner.close()


# -- the supervisor ---------------------------------------------------------------------------

exits = {"left": 0}


class ExitOnce(StepBody):
    """Calls sys.exit() the first time: the worker thread running it dies (SystemExit is not an
    Exception), which is what the supervisor is for."""

    def run(self, context: StepExecutionContext) -> None:
        if exits["left"] > 0:
            exits["left"] -= 1
            raise SystemExit("a step called sys.exit()")


class Leaving(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(ExitOnce)


def test_supervisor_restarts_a_worker_thread_that_died_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    exits["left"] = 1
    host = configure_workflow_host(max_concurrent_workflows=1, poll_interval=0.1)
    host.register_workflow(Leaving())
    with caplog.at_level(logging.ERROR, logger="liteflow"), host:
        first = next(t for t in host._workers.threads if t.name == "liteflow-workflow-0")
        workflow_id = host.start_workflow("Leaving")
        # Its only worker died in the step; the restarted one finishes it (the poll queues it again).
        instance = host.wait_for_workflow(workflow_id, timeout=20)
        assert instance.status is WorkflowStatus.COMPLETE
        assert exits["left"] == 0
        second = next(t for t in host._workers.threads if t.name == "liteflow-workflow-0")
        assert second is not first and second.is_alive() and not first.is_alive()
        wait_until(lambda: host.health().ok)
        assert all(t.is_alive() for t in host._workers.threads)
    died = [r for r in caplog.records if "liteflow-workflow-0 died" in r.getMessage()]
    assert len(died) == 1
    assert "SystemExit" in died[0].getMessage() and died[0].exc_info is not None


# -- health -----------------------------------------------------------------------------------


def test_health_of_a_host_not_started_covers_its_providers_only() -> None:
    host = configure_workflow_host()
    health = host.health()
    assert isinstance(health, Health) and health.ok
    assert set(health.components) == {"persistence", "queue", "lock"}
    assert all(isinstance(part, ComponentHealth) and part.ok for part in health.components.values())
    assert all(part.last_error is None and part.failures == 0 for part in health.components.values())
    json.dumps(health.as_dict())


def test_health_of_a_started_host_covers_every_worker_group() -> None:
    with configure_workflow_host() as host:
        health = host.health()
        assert health.ok
        assert set(health.components) == {
            "persistence",
            "queue",
            "lock",
            "workflow_workers",
            "event_workers",
            "poller",
            "timer",
        }
    assert set(host.health().components) == {"persistence", "queue", "lock"}  # stopped


def test_an_outage_is_reported_from_its_first_failure_to_the_next_success_and_logged_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = HealthMonitor()
    with caplog.at_level(logging.INFO, logger="liteflow"):
        for _ in range(5):
            monitor.failed("queue", ProviderUnavailableError("connection refused"))
        assert monitor.snapshot(None).live  # an outage is not a reason to restart the process
        down = monitor.snapshot(None).components["queue"]
        assert not down.ok and down.failures == 5
        assert down.last_error == "ProviderUnavailableError: connection refused"
        assert not monitor.snapshot(None).ok and monitor.snapshot(None).components["persistence"].ok
        monitor.succeeded("queue")
        monitor.succeeded("queue")
    up = monitor.snapshot(None).components["queue"]
    assert up.ok and up.failures == 0 and up.since >= down.since
    assert up.last_error == down.last_error  # kept for diagnosis
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "connection refused" in messages[0] and "5 failed" in messages[1]


def test_a_worker_group_with_a_dead_thread_is_not_ok() -> None:
    monitor = HealthMonitor()
    groups: dict[str, list[str]] = {name: [] for name in WORKER_GROUPS}
    assert monitor.snapshot(groups).ok
    assert monitor.snapshot(groups).live
    groups["event_workers"].append("liteflow-event-1")
    health = monitor.snapshot(groups)
    assert not health.ok and not health.live and health.components["workflow_workers"].ok
    part = health.components["event_workers"]
    assert not part.ok and part.last_error is not None and "liteflow-event-1" in part.last_error


# -- which provider failed --------------------------------------------------------------------


class BrokenStore(MemoryPersistenceProvider):
    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        raise ConnectionResetError("connection reset by peer")  # a driver error the provider let through


class CutQueue(SingleNodeQueueProvider):
    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        raise ProviderUnavailableError("connection refused")


def test_a_failure_is_traced_to_the_provider_that_raised_it() -> None:
    store, queue = BrokenStore(), CutQueue()
    providers: dict[str, object] = {"persistence": store, "queue": queue, "lock": LocalLockProvider()}
    with pytest.raises(ProviderUnavailableError) as cut:
        queue.enqueue(QueueType.WORKFLOW, "x")
    assert provider_failure(cut.value, providers) == "queue"
    with pytest.raises(ConnectionResetError) as raw:
        store.get_workflow_instance("x")
    assert provider_failure(raw.value, providers) == "persistence"
    # An answer is not an outage, wherever it comes from.
    with pytest.raises(WorkflowNotFoundError) as answer:
        MemoryPersistenceProvider.get_workflow_instance(store, "missing")
    assert provider_failure(answer.value, providers) is None
    # Nor is an error that no provider raised.
    assert provider_failure(ProviderUnavailableError("elsewhere"), providers) is None


def test_bad_input_is_still_raised_to_the_caller_not_recorded_as_an_outage() -> None:
    with configure_workflow_host() as host:
        with pytest.raises(WorkflowNotFoundError):
            host.get_workflow_instance("nope")
        assert host.health().ok


def test_provider_timeout_goes_into_the_urls_of_providers_the_host_makes() -> None:
    assert (
        with_provider_timeout("postgresql://db/app?schema=s", 8)
        == "postgresql://db/app?schema=s&connect_timeout=4&statement_timeout=8"
    )
    assert with_provider_timeout("redis://cache:6379/0", 8) == "redis://cache:6379/0?socket_timeout=4"
    assert with_provider_timeout("amqp://mq/%2F?prefix=p", 3) == "amqp://mq/%2F?prefix=p&publish_timeout=3"
    # A timeout the URL sets wins; backends without a network call are left alone.
    assert with_provider_timeout("redis://cache/0?socket_timeout=1", 8) == "redis://cache/0?socket_timeout=1"
    assert with_provider_timeout("sqlite:////var/app.db", 8) == "sqlite:////var/app.db"
    assert with_provider_timeout("memory://", 8) == "memory://"


def test_provider_timeout_must_be_a_positive_duration() -> None:
    assert configure_workflow_host().options.provider_timeout == timedelta(seconds=10)
    assert configure_workflow_host(provider_timeout=2.5).options.provider_timeout == timedelta(seconds=2.5)
    for bad in (0, -1, "10"):
        with pytest.raises(ConfigurationError, match="provider_timeout"):
            configure_workflow_host(provider_timeout=bad)


class FlakyQueue(SingleNodeQueueProvider):
    """The in-memory queue, with a switch that makes every call fail as a cut backend does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.failed_acks = 0

    def _check(self) -> None:
        if self.down.is_set():
            raise ProviderUnavailableError("connection refused")

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        self._check()
        super().enqueue(queue, item_id, priority)

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        self._check()
        return super().dequeue(queue, timeout)

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        if self.down.is_set():
            self.failed_acks += 1
        self._check()


class Paused(Workflow):
    """Holds its worker in a gate, so the outage starts while a step runs."""

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Gate).then(Noop)


def test_workers_poller_and_timer_ride_out_a_queue_outage_and_finish_the_work() -> None:
    queue = FlakyQueue()
    host = configure_workflow_host(queue_service=queue, max_concurrent_workflows=2, poll_interval=0.2)
    host.register_workflow(Paused())
    host.register_workflow(Short())
    Gate.reset()
    with host:
        threads = list(host._workers.threads)
        held = host.start_workflow("Paused")
        assert Gate.entered.wait(10)
        queue.down.set()  # dequeue, enqueue and the acknowledgement of the running step all fail
        started = host.start_workflow("Short")  # stored: succeeds although the enqueue failed
        Gate.opened.set()
        wait_until(lambda: queue.failed_acks >= 1)
        wait_until(lambda: not host.health().components["workflow_workers"].ok)
        health = host.health()
        assert not health.ok and health.live and not health.components["queue"].ok
        assert health.components["persistence"].ok
        queue.down.clear()
        for workflow_id in (held, started):
            assert host.wait_for_workflow(workflow_id, timeout=10).status is WorkflowStatus.COMPLETE
        wait_until(lambda: host.health().ok)
        assert [id(t) for t in host._workers.threads] == [id(t) for t in threads]  # none died, none restarted
        assert all(t.is_alive() for t in host._workers.threads) and host._timers.is_alive()


# -- the README's probe example ---------------------------------------------------------------


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Short(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop)


def test_the_readme_probes_report_a_degraded_queue_as_not_ready_but_live() -> None:
    host = configure_workflow_host(queue_service=CutQueue())
    host.register_workflow(Short())

    class Probes(BaseHTTPRequestHandler):  # as in the README
        def do_GET(self) -> None:
            health = host.health()
            ok = health.live if self.path == "/livez" else health.ok  # /readyz
            body = json.dumps(health.as_dict()).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Probes)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urlopen(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        assert get("/readyz")[0] == 200 and get("/livez")[0] == 200
        workflow_id = host.start_workflow("Short")  # stored; only the enqueue failed
        assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
        status, body = get("/readyz")
        assert status == 503 and body["ok"] is False
        assert body["components"]["queue"]["ok"] is False
        assert "connection refused" in body["components"]["queue"]["last_error"]
        assert body["components"]["persistence"]["ok"] is True
        assert get("/livez")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
