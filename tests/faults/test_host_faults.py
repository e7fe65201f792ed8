"""The host against backends cut through a loopback proxy (never the real servers): calls fail
fast and typed or succeed for real, health follows the outage, and the work resumes by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")
pytest.importorskip("psycopg")

from conftest import RedisPrefix, Schema

from liteflow.core import (
    ProviderUnavailableError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.testing import FaultProxy

pytestmark = pytest.mark.faults


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"condition not met within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


runs: dict[str, list[str]] = {}
runs_lock = threading.Lock()


class Note(StepBody):
    """Records each run of itself, by workflow."""

    def __init__(self) -> None:
        self.label = ""

    def run(self, context: StepExecutionContext) -> None:
        with runs_lock:
            runs.setdefault(context.workflow.id, []).append(self.label)


class Waiting(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Note).input("label", lambda data, context: "before").wait_for(
            "go", lambda data, context: data["key"]
        ).output("got", lambda step: step.event_data).then(Note).input("label", lambda data, context: "after")


TIMEOUT = 2.0  # provider_timeout of these hosts, s


def make_host(store: str, queue: str | None = None, lock: str | None = None, **options: Any) -> WorkflowHost:
    host = configure_workflow_host(store, queue, lock, poll_interval=0.3, provider_timeout=TIMEOUT, **options)
    host.register_workflow(Waiting())
    return host


def test_a_start_whose_enqueue_fails_succeeds_and_runs_once_the_queue_is_back(
    tmp_path: Path, redis_url: str, redis_prefix: RedisPrefix
) -> None:
    with FaultProxy.for_url(redis_url) as proxy:
        queue_url = proxy.url(redis_url) + f"?prefix={redis_prefix()}&visibility_timeout=3"
        host = make_host(f"sqlite:///{tmp_path / 'store.db'}", queue_url)
        with host:
            wait_until(lambda: host.health().ok, 10)
            proxy.cut()
            # The store took them: both calls happened, so neither raises.
            workflow_id = host.start_workflow("Waiting", data={"key": "k1", "got": None})
            event_id = host.publish_event("go", "k1", "payload")
            health = host.health()
            assert not health.ok
            assert not health.components["queue"].ok and health.components["queue"].failures >= 2
            assert health.components["persistence"].ok
            assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
            assert host.persistence.get_event(event_id).event_name == "go"
            proxy.restore()
            instance = host.wait_for_workflow(workflow_id, timeout=30)
            assert instance.status is WorkflowStatus.COMPLETE and instance.data["got"] == "payload"
            assert runs[workflow_id] == ["before", "after"]  # each step once
            wait_until(lambda: host.health().ok, 10)
            assert all(thread.is_alive() for thread in host._workers.threads)


def test_an_idle_host_notices_a_store_outage_and_its_end(postgres_url: str, schema: Schema) -> None:
    with FaultProxy.for_url(postgres_url) as proxy:
        host = make_host(proxy.url(postgres_url) + f"?schema={schema()}")
        with host:
            waiting = host.start_workflow("Waiting", data={"key": "k0", "got": None})
            wait_until(lambda: runs.get(waiting) == ["before"], 10)
            wait_until(lambda: host.health().ok, 10)
            proxy.cut()
            noticed = wait_until(lambda: not host.health().components["persistence"].ok, 10)
            assert noticed < 3 * host.options.poll_interval.total_seconds() + 2  # the poll probes it
            assert not host.health().ok
            calls: dict[str, Callable[[], object]] = {
                "start_workflow": lambda: host.start_workflow("Waiting", data={"key": "k2", "got": None}),
                "publish_event": lambda: host.publish_event("go", "k2", "lost"),
                "suspend_workflow": lambda: host.suspend_workflow(waiting),
                "terminate_workflow": lambda: host.terminate_workflow(waiting),
                "get_workflow_instance": lambda: host.get_workflow_instance(waiting),
                "query_workflows": lambda: host.query_workflows(),
            }
            started = time.monotonic()
            for name, call in calls.items():
                with pytest.raises(ProviderUnavailableError):  # typed, and nothing happened
                    call()
                    pytest.fail(f"{name} did not raise")
            failed_in = (time.monotonic() - started) / len(calls)
            assert failed_in < TIMEOUT  # a refused connection fails fast, not after a timeout
            proxy.restore()
            recovered = wait_until(lambda: host.health().ok, 20)
            print(
                f"store cut: noticed in {noticed:.1f} s, calls failed in {failed_in:.2f} s each, "
                f"health ok {recovered:.1f} s after the store returned"
            )
            assert host.get_workflow_instance(waiting).status is WorkflowStatus.RUNNABLE  # not suspended
            assert all(thread.is_alive() for thread in host._workers.threads)
            workflow_id = host.start_workflow("Waiting", data={"key": "k2", "got": None})
            host.publish_event("go", "k2", "kept")
            instance = host.wait_for_workflow(workflow_id, timeout=30)
            assert instance.data["got"] == "kept"  # the publish that raised did not happen
            assert len(host.query_workflows(workflow_id="Waiting")) == 2  # nor did the start


def test_calls_to_a_silent_store_raise_within_the_provider_timeout(postgres_url: str, schema: Schema) -> None:
    with FaultProxy.for_url(postgres_url) as proxy:
        host = make_host(proxy.url(postgres_url) + f"?schema={schema()}")
        with host:
            wait_until(lambda: host.health().ok, 10)
            proxy.blackhole()  # the server looks hung: only a timeout can tell
            # The calls below come once a call of the host's own (the poll) has timed out: from then
            # on the provider checks a pooled connection before lending it, so none of them sends its
            # statement. Before, a call could find the idle connection first and send its INSERT,
            # which the server ran once it answered again (failed once in CI).
            wait_until(lambda: not host.health().components["persistence"].ok, 10)
            calls: dict[str, Callable[[], object]] = {
                "start_workflow": lambda: host.start_workflow("Waiting", data={"key": "k3", "got": None}),
                "publish_event": lambda: host.publish_event("go", "k3", "lost"),
                "query_workflows": lambda: host.query_workflows(),
            }
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(ProviderUnavailableError):
                    call()
                took = time.monotonic() - started
                # provider_timeout, plus the client's grace for the server's own cancellation
                assert took < TIMEOUT + 5, (name, took)
            assert not host.health().components["persistence"].ok
            proxy.restore()
            wait_until(lambda: host.health().ok, 30)
            assert host.query_workflows() == []  # none of the calls that raised happened


def store_answers(host: WorkflowHost) -> bool:
    try:
        host.query_workflows()
    except ProviderUnavailableError:
        return False
    return True


def test_a_start_that_timed_out_on_a_silent_store_is_retried_safely_with_its_instance_id(
    postgres_url: str, schema: Schema
) -> None:
    # Not started: no poll competes for the pool's idle connection, so the start takes it and its
    # INSERT goes out into the black hole. Its outcome is unknown: the server may run it once it
    # answers again (it does, here, as a hung server would). The retry with the same instance_id
    # must end with one instance either way.
    with FaultProxy.for_url(postgres_url) as proxy:
        host = make_host(proxy.url(postgres_url) + f"?schema={schema()}")
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError):
            host.start_workflow("Waiting", data={"key": "k5", "got": None, "attempt": 1}, instance_id="order-5")
        took = time.monotonic() - started
        # It waited for an answer (the statement was sent), not for a connection (connect_timeout).
        assert TIMEOUT <= took < TIMEOUT + 5, took
        proxy.restore()
        wait_until(lambda: store_answers(host), 30)
        applied = [instance.id for instance in host.query_workflows()]
        assert applied in ([], ["order-5"])  # either outcome is allowed
        retried = host.start_workflow("Waiting", data={"key": "k5", "got": None, "attempt": 2}, instance_id="order-5")
        assert retried == "order-5"
        instances = host.query_workflows()
        assert [instance.id for instance in instances] == ["order-5"]
        assert instances[0].data["attempt"] == (1 if applied else 2)  # the retry started none if one existed
        print(f"the start that raised after {took:.1f} s was {'applied' if applied else 'not applied'}")
        with host:
            host.publish_event("go", "k5", "paid")
            instance = host.wait_for_workflow("order-5", timeout=30)
            assert instance.status is WorkflowStatus.COMPLETE and instance.data["got"] == "paid"
            assert runs["order-5"] == ["before", "after"]  # each step once


def test_a_start_with_a_silent_queue_succeeds_within_the_provider_timeout(
    tmp_path: Path, redis_url: str, redis_prefix: RedisPrefix
) -> None:
    with FaultProxy.for_url(redis_url) as proxy:
        queue_url = proxy.url(redis_url) + f"?prefix={redis_prefix()}&visibility_timeout=3"
        host = make_host(f"sqlite:///{tmp_path / 'store.db'}", queue_url)
        with host:
            wait_until(lambda: host.health().ok, 10)
            proxy.blackhole()
            started = time.monotonic()
            workflow_id = host.start_workflow("Waiting", data={"key": "k4", "got": None})
            took = time.monotonic() - started
            assert took < TIMEOUT + 3, took  # one command, retried once, each given half the timeout
            assert not host.health().components["queue"].ok
            proxy.restore()
            host.publish_event("go", "k4", "late")
            assert host.wait_for_workflow(workflow_id, timeout=30).data["got"] == "late"
            wait_until(lambda: host.health().ok, 15)


def test_an_id_lost_in_a_live_nodes_redis_inbox_comes_back_after_the_outage(
    redis_url: str, redis_prefix: RedisPrefix
) -> None:
    # Found by the fault suite: a cut between BLMOVE and its reply (or the claim) leaves the id in
    # this node's inbox and in `waiting`, so every later enqueue of it was a no-op, forever.
    from liteflow.core import QueueType
    from liteflow.providers.redis import RedisQueueProvider

    with FaultProxy.for_url(redis_url) as proxy:
        queue = RedisQueueProvider(proxy.url(redis_url), prefix=redis_prefix(), visibility_timeout=30)
        try:
            keys = queue._keys[QueueType.WORKFLOW]
            client = redis.Redis.from_url(redis_url)
            client.sadd(keys.waiting, "wf-lost")
            client.lpush(keys.inbox, "wf-lost")  # what BLMOVE did before its reply was lost
            client.close()
            proxy.cut()
            with pytest.raises(ProviderUnavailableError):
                queue.dequeue(QueueType.WORKFLOW, 0.5)
            proxy.restore()
            queue.enqueue(QueueType.WORKFLOW, "wf-lost")  # still waiting: a no-op, as before
            assert queue.dequeue(QueueType.WORKFLOW, 2.0) == "wf-lost"
            queue.acknowledge(QueueType.WORKFLOW, "wf-lost")
            assert queue.dequeue(QueueType.WORKFLOW, 0.3) is None
        finally:
            queue.close()
