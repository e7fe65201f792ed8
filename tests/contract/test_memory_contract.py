"""The provider contracts, run against the in-memory providers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from liteflow.core import (
    Event,
    LocalLockProvider,
    MemoryPersistenceProvider,
    QueueType,
    SingleNodeQueueProvider,
    WorkflowStatus,
)
from liteflow.testing import LockContract, PersistenceContract, QueueContract
from liteflow.testing._persistence_contract import SECOND, T0, make_instance, make_subscription
from liteflow.testing._quarantine_contract import splice_json


class TestMemoryPersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self) -> Iterator[MemoryPersistenceProvider]:
        provider = MemoryPersistenceProvider()
        yield provider
        provider.close()

    def corrupt_instance(self, persistence: MemoryPersistenceProvider, workflow_id: str, data_json: str) -> None:
        persistence._instances[workflow_id] = splice_json(persistence._instances[workflow_id], "data", data_json)

    def corrupt_event(self, persistence: MemoryPersistenceProvider, event_id: str, data_json: str) -> None:
        persistence._events[event_id] = splice_json(persistence._events[event_id], "event_data", data_json)

    def test_by_key_tables_keep_no_empty_entries(self, persistence: MemoryPersistenceProvider) -> None:
        # Memory-only: every (name, key) ever used would otherwise stay in the tables for good.
        instance = make_instance(status=WorkflowStatus.COMPLETE, complete_time=T0, next_execution=None)
        persistence.create_workflow(instance)
        ended, purged = make_subscription(instance, "a", "k", T0), make_subscription(instance, "b", "k", T0)
        persistence.persist_workflow(instance, subscriptions=[ended, purged])
        persistence.persist_workflow(instance, terminated_subscriptions=[ended.id])
        assert list(persistence._subscriptions_by_key) == [("b", "k")]

        event = Event(event_name="e", event_key="k", event_time=T0)
        persistence.create_event(event)
        persistence.create_event(Event(event_name="e", event_key="moved", event_time=T0, id=event.id))
        assert list(persistence._events_by_key) == [("e", "moved")]
        persistence.mark_event_processed(event.id)

        assert persistence.purge(statuses=[WorkflowStatus.COMPLETE], older_than=T0 + SECOND) == 1
        assert not persistence._subscriptions_by_key
        assert not persistence._events_by_key
        assert not persistence._errors


class TestSingleNodeQueue(QueueContract):
    deduplicates = True
    empty_timeout = 0.05  # in the process: taken as soon as queued

    @pytest.fixture
    def queue(self) -> Iterator[SingleNodeQueueProvider]:
        provider = SingleNodeQueueProvider()
        yield provider
        provider.close()

    # The wake-up rule (memory only): one wake-up in flight per queue, passed on by the consumer
    # that takes an item and leaves more behind.

    def test_an_item_wakes_one_sleeping_consumer(self, queue: SingleNodeQueueProvider) -> None:
        got = _consumers(queue, 3)
        queue.enqueue(QueueType.WORKFLOW, "a")
        _wait_for(lambda: got == ["a"])
        _wait_for(lambda: not queue._woken[QueueType.WORKFLOW])  # the woken one came back
        assert len(queue._sleepers[QueueType.WORKFLOW]) == 2  # the others were left asleep

    def test_a_burst_reaches_every_sleeping_consumer(self, queue: SingleNodeQueueProvider) -> None:
        got = _consumers(queue, 3)
        for item in ("a", "b", "c"):
            queue.enqueue(QueueType.WORKFLOW, item)
        # Those woken by the consumer before them: without that, two would sleep their 60 s.
        _wait_for(lambda: set(got) == {"a", "b", "c"})


def _consumers(queue: SingleNodeQueueProvider, count: int) -> list[str | None]:
    """``count`` threads asleep in a 60 s dequeue of the workflow queue; what they get."""
    got: list[str | None] = []
    for _ in range(count):
        threading.Thread(target=lambda: got.append(queue.dequeue(QueueType.WORKFLOW, 60.0)), daemon=True).start()
    _wait_for(lambda: len(queue._sleepers[QueueType.WORKFLOW]) == count)
    return got


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)  # polling a condition, with the deadline above


class TestLocalLock(LockContract):
    # Locks live in this process only: the "other node" is the same instance.
    supports_concurrent_nodes = False

    @pytest.fixture
    def lock(self) -> Iterator[LocalLockProvider]:
        provider = LocalLockProvider()
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, lock: LocalLockProvider) -> LocalLockProvider:
        return lock
