"""The listener that turns PostgreSQL ``NOTIFY`` into in-process wake-ups, for the queue's idle
consumers and the store's ``wait_for_work``."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from liteflow.providers.spi import Backoff, OutageLog

from ._common import CONNECT_TIMEOUT, shut_down

logger = logging.getLogger("liteflow.providers.postgres")


class Listener:
    r"""One background connection that ``LISTEN``s on one channel and counts notifications per
    payload, so that any number of threads can wait for "something new under this payload"
    without a connection each and without polling.

    Two ways to wait:

    * :meth:`generation` / :meth:`wait` (every waiter wakes on every notification): a waiter reads
      the generation *before* checking the database, and after finding nothing waits for it to
      change. The listener is subscribed before the first check is ever made, so a notification
      sent by a commit the check did not see always arrives after the generation was read: no
      wake-up is lost while the connection is up.
    * :meth:`epoch` / :meth:`wait_ticket` / :meth:`spend` (one waiter wakes per notification): each
      notification adds a *ticket* under its payload and wakes one waiter, which takes the ticket.
      For consumers that each want one item per notification (the queue: a notification is one
      enqueued row), so that an enqueue does not wake every idle worker of the process to race for
      one row. A consumer that takes an item without having waited calls :meth:`spend`, so
      tickets follow the items still waiting; stale tickets (items taken by another node) cost one
      wasted check each, never a lost wake-up: a ticket is only removed by a waiter that goes on
      to check, or for an item that was taken.

    When the connection drops, every waiter of both kinds is woken (they re-check) and the listener
    reconnects; callers also re-check every second or so to cover notifications missed while it
    was down.

    A notification sent by this process can be passed on at once, without its trip through the
    server and this thread (two wake-ups on a busy machine): the sender calls :meth:`expect` with
    its connection's backend pid before sending, then :meth:`sent` (or :meth:`unexpect` if nothing
    was sent). The notification itself, when it arrives from that pid, is then skipped, so each
    still adds one ticket.
    """

    def __init__(self, conninfo: str, channel: str, *, ready_timeout: float = CONNECT_TIMEOUT) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._mutex = threading.Lock()
        # One condition per payload (on one lock), so that a ticket wakes a waiter of its payload.
        self._conditions: dict[str, threading.Condition] = {}
        self._generations: dict[str, int] = {}
        self._tickets: dict[str, int] = {}
        self._generation_waiters: dict[str, int] = {}
        self._epoch = 0
        # (payload, backend pid) -> notifications sent by this process, already passed on here.
        self._expected: dict[tuple[str, int], int] = {}
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self._connection_lock = threading.Lock()  # held while the connection may not be closed
        self._thread = threading.Thread(target=self._run, name=f"liteflow-pg-listen-{channel}", daemon=True)
        self._thread.start()
        # Wait for the first LISTEN so that callers never check before being subscribed; if the
        # server is down the callers still work, by re-checking on a timer.
        self._ready.wait(ready_timeout)

    def _condition(self, payload: str) -> threading.Condition:
        condition = self._conditions.get(payload)
        if condition is None:
            condition = self._conditions[payload] = threading.Condition(self._mutex)
        return condition

    def generation(self, payload: str) -> int:
        with self._mutex:
            return self._generations.get(payload, 0)

    def wait(self, payload: str, seen: int, timeout: float) -> bool:
        """Wait until a notification for ``payload`` arrives after ``seen`` was read, the listener is
        closed or reconnects, or ``timeout`` seconds pass; True unless it timed out."""
        with self._mutex:
            self._generation_waiters[payload] = self._generation_waiters.get(payload, 0) + 1
            try:
                return self._condition(payload).wait_for(
                    lambda: self._stopping.is_set() or self._generations.get(payload, 0) != seen, timeout
                )
            finally:
                self._generation_waiters[payload] -= 1

    def epoch(self) -> int:
        """Changes whenever every waiter must re-check (reconnection, close): read it before
        checking the database, and pass it to :meth:`wait_ticket`."""
        with self._mutex:
            return self._epoch

    def wait_ticket(self, payload: str, seen_epoch: int, timeout: float) -> bool:
        """Wait until a ticket for ``payload`` is free (and take it), the epoch moved on from
        ``seen_epoch``, the listener is closed, or ``timeout`` seconds pass. True if a ticket was
        taken: the caller's next check stands for that notification."""
        with self._mutex:
            self._condition(payload).wait_for(
                lambda: self._tickets.get(payload, 0) > 0 or self._epoch != seen_epoch or self._stopping.is_set(),
                timeout,
            )
            if self._tickets.get(payload, 0) > 0:
                self._tickets[payload] -= 1
                return True
            return False

    def spend(self, payload: str) -> None:
        """An item of ``payload`` was taken without waiting for a ticket: drop one, if any."""
        with self._mutex:
            if self._tickets.get(payload, 0) > 0:
                self._tickets[payload] -= 1

    def expect(self, payload: str, pid: int) -> None:
        """A notification of ``payload`` is about to be sent by the session ``pid`` of this process."""
        with self._mutex:
            self._expected[payload, pid] = self._expected.get((payload, pid), 0) + 1

    def unexpect(self, payload: str, pid: int) -> None:
        """The notification announced by :meth:`expect` was not sent after all."""
        with self._mutex:
            self._unexpect((payload, pid))

    def sent(self, payload: str) -> None:
        """The notification announced by :meth:`expect` was committed: pass it on now."""
        self._bump([payload])

    def _unexpect(self, key: tuple[str, int]) -> bool:
        """Drop one expected notification; False if there was none. Mutex held."""
        count = self._expected.get(key, 0)
        if count <= 1:
            return self._expected.pop(key, None) is not None
        self._expected[key] = count - 1
        return True

    def _received(self, payload: str, pid: int) -> None:
        with self._mutex:
            if self._unexpect((payload, pid)):
                return  # passed on by its sender already
        self._bump([payload])

    @property
    def closed(self) -> bool:
        return self._stopping.is_set()

    def _bump(self, payloads: list[str] | None) -> None:
        with self._mutex:
            if payloads is None:  # everyone re-checks
                self._epoch += 1
                self._expected.clear()  # lost with the connection, or not: the re-check covers both
                for payload in self._generations:
                    self._generations[payload] += 1
                for condition in self._conditions.values():
                    condition.notify_all()
                return
            for payload in payloads:
                self._generations[payload] = self._generations.get(payload, 0) + 1
                self._tickets[payload] = self._tickets.get(payload, 0) + 1
                waiting = self._conditions.get(payload)
                if waiting is not None:
                    # Generation waiters all want to know; ticket waiters, one per ticket.
                    if self._generation_waiters.get(payload, 0):
                        waiting.notify_all()
                    else:
                        waiting.notify(1)

    def _run(self) -> None:
        backoff, outage = Backoff(initial=0.1), OutageLog(f"PostgreSQL LISTEN {self._channel}", logger)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    with self._connection_lock:
                        self._connection = conn
                    try:
                        self._listen(conn, backoff, outage)
                    finally:
                        with self._connection_lock:  # before the connection closes
                            self._connection = None
            except Exception as error:  # any failure: the thread must outlive it and reconnect
                if self._stopping.is_set():
                    break
                outage.failed(error)
                self._ready.set()
                self._bump(None)
                self._stopping.wait(backoff.next_delay())

    def _listen(self, conn: psycopg.Connection[Any], backoff: Backoff, outage: OutageLog) -> None:
        conn.execute(f'LISTEN "{self._channel}"')
        self._ready.set()
        backoff.reset()
        outage.recovered()
        self._bump(None)  # anything sent while we were not listening: re-check
        while not self._stopping.is_set():
            # Each notification is passed on as it arrives (the generator only ends at the
            # timeout); close() shuts the socket down rather than wait for that timeout.
            for notification in conn.notifies(timeout=0.25):
                self._received(notification.payload, notification.pid)
                if self._stopping.is_set():
                    break

    def close(self) -> None:
        """Stop listening and wake every waiter."""
        self._stopping.set()
        self._bump(None)
        with self._connection_lock:
            if self._connection is not None:
                shut_down(self._connection)  # its wait for notifications ends now, not at its timeout
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
