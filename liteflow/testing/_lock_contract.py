"""The contract every :class:`~liteflow.core.LockProvider` must meet, as a pytest suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from liteflow.core import LockProvider
from liteflow.core._models import new_id


class LockContract:
    """Subclass as ``Test...`` and supply two fixtures:

    ``lock``
        a provider on a backend no other test is using; close it after the yield.
    ``second_lock``
        another provider instance connected to the same backend, standing for another node.
        A provider that only locks within one process (like ``LocalLockProvider``) cannot have
        a second node: its ``second_lock`` fixture returns the ``lock`` instance itself, and the
        subclass sets ``supports_concurrent_nodes = False``, which skips the tests that need two
        distinct nodes.

    Capability flags (class attributes) may be overridden by the subclass:
    ``supports_concurrent_nodes`` (see above) and ``racing_threads``, the number of threads
    racing for one resource.
    """

    supports_concurrent_nodes: ClassVar[bool] = True
    racing_threads: ClassVar[int] = 16

    @pytest.fixture
    def lock(self) -> Iterator[LockProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `lock` fixture")

    @pytest.fixture
    def second_lock(self, lock: LockProvider) -> Iterator[LockProvider]:
        raise NotImplementedError(
            f"{type(self).__name__} must define a `second_lock` fixture (another node on the same backend, "
            "or `lock` itself with supports_concurrent_nodes = False)"
        )

    def _two_nodes(self, lock: LockProvider, second_lock: LockProvider) -> None:
        if not self.supports_concurrent_nodes:
            pytest.skip("provider locks within one process only")
        assert second_lock is not lock, "second_lock must be a separate instance when supports_concurrent_nodes"

    def test_fixtures_match_capability_flag(self, lock: LockProvider, second_lock: LockProvider) -> None:
        assert (second_lock is not lock) == self.supports_concurrent_nodes, (
            "second_lock must be a separate instance exactly when supports_concurrent_nodes is True"
        )

    def test_acquire_is_exclusive(self, lock: LockProvider, second_lock: LockProvider) -> None:
        resource = new_id()
        assert lock.acquire(resource) is True
        assert lock.acquire(resource) is False
        assert second_lock.acquire(resource) is False

    def test_release_lets_it_be_acquired_again(self, lock: LockProvider, second_lock: LockProvider) -> None:
        resource = new_id()
        assert lock.acquire(resource) is True
        lock.release(resource)
        assert second_lock.acquire(resource) is True
        assert lock.acquire(resource) is False
        second_lock.release(resource)
        assert lock.acquire(resource) is True

    def test_resources_are_independent(self, lock: LockProvider, second_lock: LockProvider) -> None:
        first, second = new_id(), new_id()
        assert lock.acquire(first) is True
        assert second_lock.acquire(second) is True
        lock.release(first)
        assert second_lock.acquire(second) is False
        assert lock.acquire(first) is True

    def test_release_of_lock_not_held_does_nothing(self, lock: LockProvider) -> None:
        resource = new_id()
        lock.release(resource)
        assert lock.acquire(resource) is True
        lock.release(resource)
        lock.release(resource)
        assert lock.acquire(resource) is True

    def test_release_by_another_node_does_not_free_the_lock(
        self, lock: LockProvider, second_lock: LockProvider
    ) -> None:
        self._two_nodes(lock, second_lock)
        resource = new_id()
        assert lock.acquire(resource) is True
        second_lock.release(resource)
        assert second_lock.acquire(resource) is False

    def test_close_releases_every_lock(self, lock: LockProvider, second_lock: LockProvider) -> None:
        self._two_nodes(lock, second_lock)
        resources = [new_id(), new_id()]
        for resource in resources:
            assert lock.acquire(resource) is True
        lock.close()
        for resource in resources:
            assert second_lock.acquire(resource) is True

    def test_racing_threads_exactly_one_wins(self, lock: LockProvider, second_lock: LockProvider) -> None:
        resource = new_id()
        count = self.racing_threads
        barrier = threading.Barrier(count)
        results: list[bool] = []
        failures: list[BaseException] = []

        def race(index: int) -> None:
            node = lock if index % 2 == 0 else second_lock
            try:
                barrier.wait()
                results.append(node.acquire(resource))
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, failures
        assert len(results) == count
        assert results.count(True) == 1, results
