"""The provider contracts, run against the in-memory providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liteflow.core import Event, LocalLockProvider, MemoryPersistenceProvider, SingleNodeQueueProvider, WorkflowStatus
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
