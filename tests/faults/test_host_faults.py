"""The host against backends cut through a loopback proxy (never the real servers): calls fail
fast and typed or succeed for real, health follows the outage, and the work resumes by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")
pytest.importorskip("psycopg")

from conftest import Schema

from liteflow.core import (
    ProviderError,
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

Prefix = Callable[[], str]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[Prefix]:
    """Hands out a fresh Redis key prefix per call, and deletes every key under it afterwards."""
    used: list[str] = []

    def make() -> str:
        used.append(f"liteflow-test-{new_id()}")
        return used[-1]

    yield make
    client = redis.Redis.from_url(redis_url)
    for name in used:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)
    client.close()


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


def make_host(store: str, queue: str | None = None, lock: str | None = None, **options: Any) -> WorkflowHost:
    host = configure_workflow_host(store, queue, lock, poll_interval=0.3, **options)
    host.register_workflow(Waiting())
    return host


def test_a_start_whose_enqueue_fails_succeeds_and_runs_once_the_queue_is_back(
    tmp_path: Path, redis_url: str, prefix: Prefix
) -> None:
    with FaultProxy.for_url(redis_url) as proxy:
        queue_url = proxy.url(redis_url) + f"?prefix={prefix()}&visibility_timeout=3"
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
            assert all(thread.is_alive() for thread in host._threads)


def test_an_idle_host_notices_a_store_outage_and_its_end(postgres_url: str, schema: Schema) -> None:
    with FaultProxy.for_url(postgres_url) as proxy:
        host = make_host(proxy.url(postgres_url) + f"?schema={schema()}")
        with host:
            wait_until(lambda: host.health().ok, 10)
            proxy.cut()
            noticed = wait_until(lambda: not host.health().components["persistence"].ok, 10)
            assert noticed < 3 * host.options.poll_interval.total_seconds() + 2  # the poll probes it
            assert not host.health().ok
            with pytest.raises(ProviderError):  # typed, and at once: nothing was stored
                host.start_workflow("Waiting", data={"key": "k2", "got": None})
            with pytest.raises(ProviderError):
                host.publish_event("go", "k2", "lost")
            assert host.persistence is not None
            proxy.restore()
            recovered = wait_until(lambda: host.health().ok, 15)
            assert recovered < 10
            assert all(thread.is_alive() for thread in host._threads)
            workflow_id = host.start_workflow("Waiting", data={"key": "k2", "got": None})
            host.publish_event("go", "k2", "kept")
            instance = host.wait_for_workflow(workflow_id, timeout=30)
            assert instance.data["got"] == "kept"  # the publish that raised did not happen
