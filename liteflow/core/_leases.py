"""The base of leased locks: locks on a shared backend that lapse unless their holder renews them."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import ClassVar, Generic, TypeVar

from ._backoff import OutageLog
from ._errors import InvalidArgumentError
from ._providers import LockProvider

H = TypeVar("H")


class LeasedLockProvider(LockProvider, Generic[H]):
    """A :class:`LockProvider` whose locks are leases: each lapses ``lease`` seconds after it was
    taken or last renewed, so the locks of a node that dies come free without anyone's help.

    This base keeps the locks this provider holds (resource -> ``H``, whatever the backend needs to
    renew and release one: a token, a lease client), and runs the renewal thread: every
    ``lease / 3`` it calls :meth:`renew_now`, and it survives any exception, logging an outage once
    when it starts and once when it ends (:class:`OutageLog`). A subclass keeps only what its
    backend does:

    - ``__init__`` calls ``super().__init__(lease=..., logger=..., what="Redis lock")`` first, and
      :meth:`_start_renewal` last (unless renewal is off);
    - :meth:`acquire` takes the lock on the backend and records it with :meth:`_hold`;
    - :meth:`_extend` extends the locks held and drops those found lost with :meth:`_drop_lost`;
    - :meth:`_give_back` releases one lock on the backend (:meth:`release` forgets it first, so a
      lock is given back at most once);
    - :meth:`_close_backend` releases what :meth:`_forget_all` returns and closes the connections.

    The contract suite for leases is :class:`liteflow.testing.LeasedLockContract`.

    Args:
        lease: seconds a lock stays held without renewal.
        logger: where the lock and its renewal thread log.
        what: the lock as it should read in the log (``"Redis lock"``).
    """

    _check_every: ClassVar[float] = math.inf  # the longest the renewal thread sleeps between checks

    def __init__(self, *, lease: float, logger: logging.Logger, what: str) -> None:
        if lease <= 0:
            raise InvalidArgumentError(f"lease must be positive, got {lease}")
        self.lease = lease
        self._logger = logger
        self._what = what
        self._mutex = threading.Lock()  # guards _held
        self._held: dict[str, H] = {}
        self._stopping = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- what the subclass implements ---------------------------------------------------------------

    def _extend(self, held: list[tuple[str, H]]) -> None:
        """Extend ``held`` (the locks held a moment ago) by one lease; drop those found lost with
        :meth:`_drop_lost`. Raise :class:`ProviderError` if the backend did not answer."""
        raise NotImplementedError

    def _give_back(self, resource: str, held: H) -> None:
        """Release one lock on the backend (already forgotten here)."""
        raise NotImplementedError

    def _close_backend(self) -> None:
        """At close, after renewal stopped: release what :meth:`_forget_all` returns, close the
        connections."""

    # -- the locks held -----------------------------------------------------------------------------

    def _hold(self, resource: str, held: H) -> None:
        with self._mutex:
            self._held[resource] = held

    def _holding(self, resource: str) -> H | None:
        with self._mutex:
            return self._held.get(resource)

    def _held_now(self) -> list[tuple[str, H]]:
        with self._mutex:
            return list(self._held.items())

    def _forget_all(self) -> list[tuple[str, H]]:
        with self._mutex:
            held = list(self._held.items())
            self._held.clear()
        return held

    def _drop_lost(self, resource: str, held: H, detail: object = None) -> bool:
        """Forget the lock on ``resource`` found lost, unless it was released or taken again since
        ``held`` was read; log it at WARNING. Whether it was dropped."""
        with self._mutex:
            if self._held.get(resource) is not held:
                return False
            del self._held[resource]
        message = "lock on %s lapsed before it could be renewed; another node may hold it"
        if detail is None:
            self._logger.warning(message, resource)
        else:
            self._logger.warning(message + ": %s", resource, detail)
        return True

    # -- the contract -------------------------------------------------------------------------------

    def release(self, resource: str) -> None:
        with self._mutex:
            held = self._held.pop(resource, None)
        if held is not None:
            self._give_back(resource, held)

    def renew_now(self) -> None:
        """Extend every lock held now by one lease, and drop those found lost (what the renewal
        thread does every ``lease / 3``)."""
        held = self._held_now()
        if held:
            self._extend(held)

    def close(self) -> None:
        """Stop renewal, release every lock this provider holds, and close its connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._renewer is not None:
            self._renewer.join()
        self._close_backend()

    # -- renewal ------------------------------------------------------------------------------------

    def _start_renewal(self, name: str) -> None:
        """Start the renewal thread, named ``name``."""
        self._renewer = threading.Thread(target=self._renew_loop, name=name, daemon=True)
        self._renewer.start()

    def _between_renewals(self) -> None:
        """Called by the renewal thread at least every ``_check_every`` seconds between two
        renewals; does nothing by default."""

    def _retry_after(self, failures: int) -> float:
        """Seconds before the next renewal after ``failures`` failed ones in a row. By default the
        regular ``lease / 3``: a lock is kept only by renewing it before it lapses, and a lapsed one
        is dropped at the first renewal after, so there is nothing to gain by waiting longer."""
        return self.lease / 3

    def _renewal_log(self) -> OutageLog:
        return OutageLog(f"{self._what} renewal (held locks lapse unless it recovers in time)", self._logger)

    def _renew_loop(self) -> None:
        outage = self._renewal_log()
        interval = self.lease / 3
        failures = 0
        next_renewal = time.monotonic() + interval
        while not self._stopping.wait(min(self._check_every, max(0.0, next_renewal - time.monotonic()))):
            try:
                if time.monotonic() < next_renewal:
                    self._between_renewals()
                    continue
                self.renew_now()
            except Exception as error:  # the thread must outlive any failure
                failures += 1
                outage.failed(error)
                next_renewal = time.monotonic() + self._retry_after(failures)
                continue
            failures = 0
            outage.recovered()
            next_renewal = time.monotonic() + interval
