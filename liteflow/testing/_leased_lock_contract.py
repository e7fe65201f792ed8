"""The contract of a leased lock (:class:`~liteflow.providers.spi.LeasedLockProvider`), as a pytest
suite: what the lease adds to the :class:`LockContract`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, cast

import pytest

from liteflow.core._models import new_id
from liteflow.core.spi import LeasedLockProvider

MakeLock = Callable[..., LeasedLockProvider[Any]]


class _Fenced(Protocol):
    def token(self, resource: str) -> int | None: ...


def _token(lock: LeasedLockProvider[Any], resource: str) -> int | None:
    return cast(_Fenced, lock).token(resource)


class LeasedLockContract:
    """Subclass as ``Test...`` and supply one fixture:

    ``make_leased_lock``
        a factory: each call ``make_leased_lock(renew=True)`` returns a new provider (another
        node) on one backend that every call of a test shares and no other test uses, with a
        lease of :attr:`lease` seconds; ``renew=False`` makes a node that never renews (one that
        stalled, or died without closing). Close every provider made after the yield.

    Capability flags (class attributes) the subclass may override: :attr:`lease`,
    :attr:`renewal_leases` and :attr:`fencing`.

    No test sleeps for a fixed time: each polls the lock, with a deadline, until the lease has
    done what it must (lapsed, or been renewed past the time asked).
    """

    lease: ClassVar[float] = 0.5
    """Seconds of the lease the factory gives: short, so the suite is fast, yet several times
    what one call to the backend takes."""
    renewal_leases: ClassVar[float] = 3.0
    """For how many leases the renewal test holds a lock."""
    fencing: ClassVar[bool] = True
    """The provider has ``token(resource)``, a fencing token growing with each grant."""

    @pytest.fixture
    def make_leased_lock(self) -> Iterator[MakeLock]:
        raise NotImplementedError(f"{type(self).__name__} must define a `make_leased_lock` fixture")

    def _poll(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Check ``condition`` about twenty times a lease until it holds; the seconds it took."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                pytest.fail(f"{what} within {timeout:.1f} s")
            time.sleep(self.lease / 20)
        return time.monotonic() - started

    def test_a_holder_that_stops_renewing_loses_the_lock_after_the_lease(
        self, make_leased_lock: MakeLock, caplog: pytest.LogCaptureFixture
    ) -> None:
        stalled, other = make_leased_lock(renew=False), make_leased_lock()
        resource = new_id()
        taken = time.monotonic()
        assert stalled.acquire(resource) is True
        assert other.acquire(resource) is False
        # Lapsed no sooner than the lease (less a little for clocks and timer steps), and soon after.
        waited = self._poll(lambda: other.acquire(resource), 1.5 * self.lease + 2, "the lease did not lapse")
        assert time.monotonic() - taken >= 0.85 * self.lease, f"lapsed after {waited:.2f} s"
        new = _token(other, resource) if self.fencing else None
        if self.fencing:
            old = _token(stalled, resource)
            assert old is not None and new is not None and new > old
        # The stalled node wakes up: its renewal finds the lock lost and says so, and its release
        # (of a lock it no longer holds) does not free the new holder's.
        with caplog.at_level(logging.WARNING, logger="liteflow"):
            stalled.renew_now()
        lost = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and resource in r.getMessage()]
        assert any("lapsed" in message for message in lost), caplog.text
        stalled.release(resource)
        assert stalled.acquire(resource) is False
        other.renew_now()
        if self.fencing:
            assert _token(stalled, resource) is None
            assert _token(other, resource) == new
        assert make_leased_lock().acquire(resource) is False

    def test_a_renewing_holder_keeps_the_lock_past_several_leases(self, make_leased_lock: MakeLock) -> None:
        holder, other = make_leased_lock(), make_leased_lock()
        resource = new_id()
        assert holder.acquire(resource) is True
        until = time.monotonic() + self.renewal_leases * self.lease
        refused = 0
        while time.monotonic() < until:
            assert other.acquire(resource) is False, f"lost after {refused} refusals"
            refused += 1
            time.sleep(self.lease / 10)
        assert other.acquire(resource) is False
        holder.release(resource)
        assert other.acquire(resource) is True

    def test_fencing_tokens_grow_with_each_grant(self, make_leased_lock: MakeLock) -> None:
        if not self.fencing:
            pytest.skip("the provider has no fencing tokens")
        first, second = make_leased_lock(), make_leased_lock()
        resource = new_id()
        tokens = []
        for node, idle in [(first, second), (second, first), (first, second)]:
            assert _token(node, resource) is None
            assert node.acquire(resource) is True
            token = _token(node, resource)
            assert token is not None and _token(idle, resource) is None
            tokens.append(token)
            node.release(resource)
            assert _token(node, resource) is None
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens

    def test_only_the_holder_releases_a_lock(self, make_leased_lock: MakeLock) -> None:
        holder, other = make_leased_lock(), make_leased_lock()
        resource = new_id()
        assert holder.acquire(resource) is True
        other.release(resource)  # never held it
        assert other.acquire(resource) is False
        holder.release(resource)
        assert other.acquire(resource) is True
        holder.release(resource)  # held it once, not now
        assert holder.acquire(resource) is False
        other.release(resource)
        assert holder.acquire(resource) is True
