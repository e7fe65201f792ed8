"""The provider contracts, run against the in-memory providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liteflow.core import LocalLockProvider, MemoryPersistenceProvider, SingleNodeQueueProvider
from liteflow.testing import LockContract, PersistenceContract, QueueContract


class TestMemoryPersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self) -> Iterator[MemoryPersistenceProvider]:
        provider = MemoryPersistenceProvider()
        yield provider
        provider.close()


class TestSingleNodeQueue(QueueContract):
    deduplicates = True

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
