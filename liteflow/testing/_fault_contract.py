"""What every provider must do when its backend fails, as pytest suites run through a :class:`FaultProxy`.

Each suite needs two fixtures: ``fault_proxy``, a :class:`FaultProxy` to the backend, and the
provider (``queue``, ``lock`` or ``persistence``) connected *through* that proxy, with short
timeouts so that the black-hole tests end quickly. The promises checked:

* Cut (every connection reset, new ones refused): calls raise :class:`ProviderUnavailableError`
  (the driver's error as ``__cause__``) within ``outage_bound`` seconds; none hangs.
* Black-hole (connections stay open, nothing answers): the same, within ``blackhole_bound``
  seconds, which the provider's socket or statement timeouts must make happen.
* Restore: the *same* provider object works again within ``recovery_bound`` seconds, without being
  recreated; what was stored or queued before the fault is all still there; its background threads
  are all still alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import ClassVar, TypeVar

import pytest

from liteflow.core import (
    LockProvider,
    PersistenceProvider,
    ProviderUnavailableError,
    QueueProvider,
    QueueType,
    WorkflowNotFoundError,
)
from liteflow.core._models import new_id

from ._persistence_data import make_instance, rich_data
from ._proxy import FaultProxy

T = TypeVar("T")


def _provider_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("liteflow")}


class _FaultSuite:
    _threads_before: set[threading.Thread]
    outage_bound: ClassVar[float] = 20.0
    """Seconds a call may take to raise once the backend is cut (generous: it guards hangs)."""
    blackhole_bound: ClassVar[float] = 45.0
    """Seconds a call may take to raise while the backend is black-holed (its timeouts plus slack)."""
    recovery_bound: ClassVar[float] = 30.0
    """Seconds the provider may take to work again once the backend is back."""

    @pytest.fixture(autouse=True)
    def _note_threads_before(self) -> None:
        # Autouse fixtures run before the provider fixture: threads alive now belong to providers
        # of earlier tests, which may still be winding down, and are not this provider's to keep.
        self._threads_before = _provider_threads()

    def _own_threads(self) -> set[threading.Thread]:
        return _provider_threads() - self._threads_before

    @pytest.fixture
    def fault_proxy(self) -> Iterator[FaultProxy]:
        raise NotImplementedError(f"{type(self).__name__} must define a `fault_proxy` fixture")

    def assert_unavailable(self, call: Callable[[], object], bound: float) -> ProviderUnavailableError:
        """``call`` raises :class:`ProviderUnavailableError`, with a cause, within ``bound`` seconds."""
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError) as raised:
            call()
        elapsed = time.monotonic() - started
        assert elapsed < bound, f"took {elapsed:.1f} s to fail, more than {bound} s"
        assert raised.value.__cause__ is not None, "the driver's error must be kept as __cause__"
        return raised.value

    def eventually(self, call: Callable[[], T]) -> T:
        """``call``'s result once it stops raising :class:`ProviderUnavailableError` (the backend
        is back), retried until ``recovery_bound`` seconds have passed."""
        deadline = time.monotonic() + self.recovery_bound
        while True:
            try:
                return call()
            except ProviderUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling the backend's return, with a deadline


class QueueFaultContract(_FaultSuite):
    """Subclass as ``Test...`` with ``fault_proxy`` and ``queue`` fixtures (see the module docstring)."""

    @pytest.fixture
    def queue(self) -> Iterator[QueueProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `queue` fixture")

    def _drain_until(self, queue: QueueProvider, expected: set[str]) -> set[str]:
        """Dequeue and acknowledge until every id of ``expected`` came out (or the deadline)."""
        seen: set[str] = set()
        deadline = time.monotonic() + self.recovery_bound
        while not expected <= seen and time.monotonic() < deadline:
            item = self.eventually(lambda: queue.dequeue(QueueType.WORKFLOW, 0.5))
            if item is not None:
                seen.add(item)
                self.eventually(partial(queue.acknowledge, QueueType.WORKFLOW, item))
        return seen

    def _fault_and_restore(self, queue: QueueProvider, fault: Callable[[], None], restore: Callable[[], None],
                           bound: float) -> None:  # fmt: skip
        assert queue.dequeue(QueueType.WORKFLOW, 0.05) is None  # consuming, as a host would be
        before = {f"before-{n}-{new_id()}" for n in range(5)}
        for item in sorted(before):
            queue.enqueue(QueueType.WORKFLOW, item)
        threads = self._own_threads()
        fault()
        failed = f"failed-{new_id()}"
        self.assert_unavailable(lambda: queue.enqueue(QueueType.WORKFLOW, failed), bound)
        restore()
        after = f"after-{new_id()}"
        self.eventually(lambda: queue.enqueue(QueueType.WORKFLOW, after))
        seen = self._drain_until(queue, {*before, after})
        assert {*before, after} <= seen, f"lost: {sorted({*before, after} - seen)}"
        assert not [t.name for t in threads if not t.is_alive()], "provider threads died"

    def test_cut_fails_fast_then_recovers_without_loss(self, queue: QueueProvider, fault_proxy: FaultProxy) -> None:
        self._fault_and_restore(queue, fault_proxy.cut, fault_proxy.restore, self.outage_bound)

    def test_blackhole_times_out_then_recovers_without_loss(
        self, queue: QueueProvider, fault_proxy: FaultProxy
    ) -> None:
        self._fault_and_restore(queue, fault_proxy.blackhole, fault_proxy.restore, self.blackhole_bound)

    def test_dequeue_during_an_outage_raises_or_returns_nothing(
        self, queue: QueueProvider, fault_proxy: FaultProxy
    ) -> None:
        assert queue.dequeue(QueueType.EVENT, 0.05) is None
        fault_proxy.cut()
        started = time.monotonic()
        try:
            assert queue.dequeue(QueueType.EVENT, 0.2) is None
        except ProviderUnavailableError as error:
            assert error.__cause__ is not None
        assert time.monotonic() - started < self.outage_bound
        fault_proxy.restore()
        item = f"event-{new_id()}"
        self.eventually(lambda: queue.enqueue(QueueType.EVENT, item))
        deadline = time.monotonic() + self.recovery_bound
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = self.eventually(lambda: queue.dequeue(QueueType.EVENT, 0.5))
        assert taken == item


class LockFaultContract(_FaultSuite):
    """Subclass as ``Test...`` with ``fault_proxy`` and ``lock`` fixtures (see the module docstring).
    The lock's lease must be longer than ``outage_bound`` plus a few seconds, so that a lock held
    across a short cut is still held afterwards."""

    @pytest.fixture
    def lock(self) -> Iterator[LockProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `lock` fixture")

    def test_cut_fails_fast_then_recovers_keeping_held_locks(self, lock: LockProvider, fault_proxy: FaultProxy) -> None:
        held, other = f"held-{new_id()}", f"other-{new_id()}"
        assert lock.acquire(held)
        threads = self._own_threads()
        fault_proxy.cut()
        self.assert_unavailable(lambda: lock.acquire(other), self.outage_bound)
        fault_proxy.restore()
        assert self.eventually(lambda: lock.acquire(other))
        assert not self.eventually(lambda: lock.acquire(held))  # still ours: neither lost nor free
        self.eventually(lambda: lock.release(held))
        assert self.eventually(lambda: lock.acquire(held))
        assert not [t.name for t in threads if not t.is_alive()], "provider threads died"

    def test_blackhole_times_out_then_recovers(self, lock: LockProvider, fault_proxy: FaultProxy) -> None:
        threads = self._own_threads()
        fault_proxy.blackhole()
        self.assert_unavailable(lambda: lock.acquire(f"r-{new_id()}"), self.blackhole_bound)
        fault_proxy.restore()
        resource = f"r-{new_id()}"
        assert self.eventually(lambda: lock.acquire(resource))
        self.eventually(lambda: lock.release(resource))
        assert not [t.name for t in threads if not t.is_alive()], "provider threads died"


class PersistenceFaultContract(_FaultSuite):
    """Subclass as ``Test...`` with ``fault_proxy`` and ``persistence`` fixtures (see the module
    docstring). Also checks that a save that raised did not happen."""

    @pytest.fixture
    def persistence(self) -> Iterator[PersistenceProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `persistence` fixture")

    def _fault_and_restore(self, persistence: PersistenceProvider, fault: Callable[[], None],
                           restore: Callable[[], None], bound: float) -> None:  # fmt: skip
        saved = make_instance(data=rich_data())
        persistence.create_workflow(saved)
        fault()
        self.assert_unavailable(lambda: persistence.get_workflow_instance(saved.id), bound)
        refused = make_instance()
        self.assert_unavailable(lambda: persistence.create_workflow(refused), bound)
        restore()
        loaded = self.eventually(lambda: persistence.get_workflow_instance(saved.id))
        assert loaded.data == saved.data and loaded.revision == saved.revision
        with pytest.raises(WorkflowNotFoundError):  # a call that raised did not happen
            persistence.get_workflow_instance(refused.id)
        persistence.persist_workflow(loaded)
        assert persistence.get_workflow_instance(saved.id).revision == saved.revision + 1

    def test_cut_fails_fast_then_recovers_without_loss(
        self, persistence: PersistenceProvider, fault_proxy: FaultProxy
    ) -> None:
        self._fault_and_restore(persistence, fault_proxy.cut, fault_proxy.restore, self.outage_bound)

    def test_blackhole_times_out_then_recovers_without_loss(
        self, persistence: PersistenceProvider, fault_proxy: FaultProxy
    ) -> None:
        self._fault_and_restore(persistence, fault_proxy.blackhole, fault_proxy.restore, self.blackhole_bound)
