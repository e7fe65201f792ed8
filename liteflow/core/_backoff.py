"""Retry pacing and outage logging for background loops.

A loop that talks to a backend must survive the backend going away: it waits a little longer
after each failure (:class:`Backoff`) and reports the outage once when it starts and once when it
ends (:class:`OutageLog`), instead of one traceback per attempt. Typical use::

    backoff, outage = Backoff(), OutageLog("PostgreSQL listener", logger)
    while not stop.is_set():
        try:
            work()
        except Exception as error:
            outage.failed(error)
            stop.wait(backoff.next_delay())
        else:
            outage.recovered()
            backoff.reset()
"""

from __future__ import annotations

import logging
import random
import threading
import time

from ._errors import InvalidArgumentError

_default_logger = logging.getLogger("liteflow")


class Backoff:
    """Capped exponential delays with jitter: ``initial``, then doubling up to ``cap`` seconds.

    Each delay is drawn from the upper half of the current step (``[step/2, step]``), so loops that
    failed together do not all retry at the same instant, yet never retry faster than half a step.

    Args:
        initial: The first delay, in seconds.
        cap: The longest delay, in seconds.
        factor: How much the step grows after each failure.
    """

    def __init__(self, initial: float = 0.05, cap: float = 5.0, *, factor: float = 2.0) -> None:
        if initial <= 0 or cap < initial or factor < 1:
            raise InvalidArgumentError(f"invalid backoff: initial={initial}, cap={cap}, factor={factor}")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.attempts = 0
        self._random = random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        step = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return self._random.uniform(step / 2, step)

    def reset(self) -> None:
        """Start again from ``initial`` (call after a success)."""
        self.attempts = 0


class OutageLog:
    """Logs an outage once when it starts and once when it ends, with the number of failures.

    Thread-safe, so several threads of one component may share it.

    Args:
        what: The component, as it should read in the log ("Redis lock renewal").
        logger: Where to log; the ``liteflow`` logger by default.
    """

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self.logger = logger or _default_logger
        self.failures = 0
        self.since: float | None = None
        """``time.monotonic()`` of the first failure of the current outage, None when healthy."""
        self.last_error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def in_outage(self) -> bool:
        """True between a failure and the next success."""
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        """Record one failure; the first of an outage is logged as a warning with the error."""
        with self._lock:
            self.failures += 1
            self.last_error = error
            if self.since is not None:
                return
            self.since = time.monotonic()
        self.logger.warning("%s failed, retrying with backoff until it recovers: %s", self.what, error)

    def recovered(self) -> None:
        """Record a success; ends the outage (logged with its length and failure count) if one was on."""
        with self._lock:
            if self.since is None:
                return
            seconds, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures, self.last_error = None, 0, None
        self.logger.warning("%s recovered after %.1f s and %d failed attempt(s)", self.what, seconds, failures)
