"""Background helpers of the host: a timer wheel for due work and a loop for async steps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class TimerQueue(Generic[T]):
    """Calls ``fire(item)`` at (or just after) each item's monotonic due time, on one thread.

    One thread and a heap instead of a ``threading.Timer`` per item: thousands of sleeping
    workflows cost a heap entry each, and an idle host blocks on a condition, not a poll.
    """

    def __init__(self, fire: Callable[[T], None], name: str = "liteflow-timers") -> None:
        self._fire = fire
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
                    if self._heap and self._heap[0][0] <= now:
                        break
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._condition.wait(timeout)
                if not self._running:
                    return
                _, _, item = heapq.heappop(self._heap)
            self._fire(item)


class AsyncRunner:
    """Runs coroutines of ``async def`` steps on one event loop in a background thread, so the
    worker thread that called the step waits for its result without a loop of its own."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, awaitable: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self._ensure_loop())
        return future.result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="liteflow-async", daemon=True).start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
