"""Background helpers of the host: a timer wheel for due work and a loop for async steps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ._backoff import Backoff

T = TypeVar("T")
logger = logging.getLogger("liteflow")


class TimerQueue(Generic[T]):
    """Calls ``fire(item)`` at (or just after) each item's monotonic due time, on one thread.

    One thread and a heap instead of a ``threading.Timer`` per item: thousands of sleeping
    workflows cost a heap entry each, and an idle host blocks on a condition, not a poll.

    When ``fire`` raises (its backend is down), the item goes back on the heap and the thread
    pauses with a growing delay before firing anything again, so an outage costs one failed call
    per delay, not one per item, and nothing due is dropped. ``on_error(error)`` and
    ``on_success()`` report each outcome (to the host's health).
    """

    def __init__(
        self,
        fire: Callable[[T], None],
        name: str = "liteflow-timers",
        *,
        on_error: Callable[[Exception], None] | None = None,
        on_success: Callable[[], None] | None = None,
    ) -> None:
        self._fire = fire
        self._on_error = on_error
        self._on_success = on_success
        self._backoff = Backoff(0.05, 2.0)
        self._pause_until = 0.0
        self._heap: list[tuple[float, int, T]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self._name = name

    def start(self) -> None:
        with self._condition:
            self._running = True
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """Whether the timer thread runs (False before ``start`` and after ``stop``)."""
        return self._thread is not None and self._thread.is_alive()

    def revive(self) -> bool:
        """Start a new timer thread if the running one died; True if it had to."""
        with self._condition:
            if not self._running or self.is_alive():
                return False
        self.start()
        return True

    def stop(self) -> None:
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()

    def call_at(self, due: float, item: T) -> None:
        with self._condition:
            heapq.heappush(self._heap, (due, next(self._counter), item))
            if self._heap[0][2] is item:
                self._condition.notify()

    def call_later(self, delay: float, item: T) -> None:
        self.call_at(time.monotonic() + delay, item)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._running:
                    now = time.monotonic()
                    due = max(self._heap[0][0], self._pause_until) if self._heap else None
                    if due is not None and due <= now:
                        break
                    self._condition.wait(None if due is None else due - now)
                if not self._running:
                    return
                due, _, item = heapq.heappop(self._heap)
            self._fire_guarded(due, item)

    def _fire_guarded(self, due: float, item: T) -> None:
        try:
            self._fire(item)
        except Exception as error:
            with self._condition:
                heapq.heappush(self._heap, (due, next(self._counter), item))
                self._pause_until = time.monotonic() + self._backoff.next_delay()
            _report(self._on_error, error)
        else:
            if self._backoff.attempts:
                self._backoff.reset()
            _report(self._on_success)


def _report(callback: Callable[..., None] | None, *args: Any) -> None:
    """Call a reporting hook; a failing hook must not take the timer thread down with it."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        logger.exception("a timer reporting hook failed")


class AsyncRunner:
    """Runs coroutines of ``async def`` steps on one event loop in a background thread, so the
    worker thread that called the step waits for its result without a loop of its own."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, awaitable: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self._ensure_loop())
        return future.result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                # A thread that died (it should not: see _serve) would leave every later step
                # waiting forever on a loop nobody runs, so a new loop takes over.
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_serve, args=(loop,), name="liteflow-async", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until ``close`` stops it. A ``SystemExit`` or ``KeyboardInterrupt`` raised by a
    step comes out of ``run_forever`` (the step's caller gets it too); the loop goes on serving
    the other steps."""
    backoff = Backoff(0.05, 2.0)
    while True:
        try:
            loop.run_forever()
            return
        except BaseException as error:
            logger.error("the loop running async steps was interrupted by %r; it carries on", error)
            time.sleep(backoff.next_delay())  # a step that keeps raising must not spin this thread


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
