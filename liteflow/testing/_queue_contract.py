"""The contract every :class:`~liteflow.core.QueueProvider` must meet, as a pytest suite."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import ClassVar

import pytest

from liteflow.core import QueueProvider, QueueType
from liteflow.core._models import new_id

EMPTY_TIMEOUT = 0.2
"""The dequeue timeout used on empty queues: short, so the suite stays fast."""


def wait_until_inside(thread: threading.Thread, function_name: str, timeout: float = 5.0) -> None:
    """Return once ``thread`` is running ``function_name`` (a frame of that name is on its stack),
    e.g. a consumer inside its blocking ``dequeue``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name == function_name:
                return
            frame = frame.f_back
        time.sleep(0.001)  # polling a condition, with the deadline above
    raise AssertionError(f"{thread.name} did not enter {function_name} within {timeout} s")


def drain(queue: QueueProvider, queue_type: QueueType, *, timeout: float = EMPTY_TIMEOUT) -> list[str]:
    """Dequeue (and acknowledge) until the queue reports empty."""
    items: list[str] = []
    while (item := queue.dequeue(queue_type, timeout)) is not None:
        queue.acknowledge(queue_type, item)
        items.append(item)
    return items


class QueueContract:
    """Subclass as ``Test...`` and supply a ``queue`` fixture yielding a provider whose queues are
    empty and not shared with anything else running; close it after the yield.

    Capability flags (class attributes) may be overridden by the subclass:

    ``deduplicates``
        Queuing an id that is already waiting is a no-op, so it is delivered exactly once. When
        False the suite only requires it to be delivered at least once and at most twice.
    ``preserves_order``
        Items of one queue come out in the order they went in (FIFO). When False only the set of
        items delivered is checked.
    ``honours_priority``
        Items queued with a higher ``priority`` before a ``dequeue`` come out before lower ones
        (FIFO within a priority when ``preserves_order``). When False the priority tests skip.
    """

    deduplicates: ClassVar[bool] = True
    preserves_order: ClassVar[bool] = True
    honours_priority: ClassVar[bool] = True
    empty_timeout: ClassVar[float] = EMPTY_TIMEOUT
    """Seconds a ``dequeue`` waits before the suite takes a queue for empty (every drain ends with
    one such wait). Lower it for a backend whose items can be taken as soon as ``enqueue`` returns,
    where the wait only shows that nothing more comes; keep it for one that delivers asynchronously
    (a broker pushing messages to its consumers), where a shorter wait could end a drain early."""
    concurrent_items: ClassVar[int] = 2000
    """Ids pushed through 4 producers and 4 consumers in the no-loss test (lower it for slow
    backends, e.g. emulators over HTTP)."""

    @pytest.fixture
    def queue(self) -> Iterator[QueueProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `queue` fixture")

    def test_items_come_out_in_order(self, queue: QueueProvider) -> None:
        for queue_type in QueueType:
            items = [f"{queue_type.value}-{n}-{new_id()}" for n in range(5)]
            for item in items:
                queue.enqueue(queue_type, item)
            taken = drain(queue, queue_type, timeout=self.empty_timeout)
            if self.preserves_order:
                assert taken == items
            else:
                assert sorted(taken) == sorted(items)

    def test_queue_types_are_independent(self, queue: QueueProvider) -> None:
        workflow_item, event_item = f"wf-{new_id()}", f"ev-{new_id()}"
        queue.enqueue(QueueType.WORKFLOW, workflow_item)
        queue.enqueue(QueueType.EVENT, event_item)
        assert drain(queue, QueueType.EVENT, timeout=self.empty_timeout) == [event_item]
        assert drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout) == [workflow_item]

    def test_dequeue_on_empty_queue_waits_about_the_timeout(self, queue: QueueProvider) -> None:
        for queue_type in QueueType:
            started = time.monotonic()
            assert queue.dequeue(queue_type, self.empty_timeout) is None
            elapsed = time.monotonic() - started
            assert self.empty_timeout / 2 <= elapsed <= self.empty_timeout + 1.0, elapsed

    def test_blocked_dequeue_wakes_when_an_item_arrives(self, queue: QueueProvider) -> None:
        item = new_id()
        result: list[tuple[str | None, float]] = []

        def consume() -> None:
            value = queue.dequeue(QueueType.WORKFLOW, 10.0)
            result.append((value, time.monotonic()))

        consumer = threading.Thread(target=consume)
        consumer.start()
        wait_until_inside(consumer, "dequeue")  # the consumer waits in dequeue before the item arrives
        enqueued = time.monotonic()
        queue.enqueue(QueueType.WORKFLOW, item)
        consumer.join(timeout=5)
        assert not consumer.is_alive(), "dequeue did not wake up"
        value, woke = result[0]
        assert value == item
        assert woke - enqueued < 1.0
        queue.acknowledge(QueueType.WORKFLOW, item)

    def test_close_wakes_a_blocked_dequeue(self, queue: QueueProvider) -> None:
        result: list[str | None] = []
        # A dequeue that would block for 60 s; ended by close well before that (10 s is a generous
        # bound for a loaded machine, and far from what a missed wake-up would take).
        consumer = threading.Thread(target=lambda: result.append(queue.dequeue(QueueType.EVENT, 60.0)))
        consumer.start()
        wait_until_inside(consumer, "dequeue")
        queue.close()
        consumer.join(timeout=10)
        assert not consumer.is_alive(), "close did not wake a blocked dequeue"
        assert result == [None]

    def test_no_loss_no_duplicates_under_concurrency(self, queue: QueueProvider) -> None:
        producers, consumers, total = 4, 4, self.concurrent_items
        items = [f"item-{n}-{new_id()}" for n in range(total)]
        taken: list[str] = []
        taken_lock = threading.Lock()
        failures: list[BaseException] = []
        deadline = time.monotonic() + 60

        def produce(index: int) -> None:
            try:
                for item in items[index::producers]:
                    queue.enqueue(QueueType.WORKFLOW, item)
            except BaseException as e:
                failures.append(e)

        def consume() -> None:
            try:
                while time.monotonic() < deadline:
                    with taken_lock:
                        if len(taken) >= total:
                            return
                    item = queue.dequeue(QueueType.WORKFLOW, 0.05)
                    if item is not None:
                        queue.acknowledge(QueueType.WORKFLOW, item)
                        with taken_lock:
                            taken.append(item)
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        threads += [threading.Thread(target=consume) for _ in range(consumers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)

        taken += drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout)
        counts = Counter(taken)
        assert set(counts) == set(items), f"{len(set(items) - set(counts))} items lost"
        assert [item for item, n in counts.items() if n > 1] == []

    def test_enqueue_of_waiting_item(self, queue: QueueProvider) -> None:
        item, other = new_id(), new_id()
        queue.enqueue(QueueType.WORKFLOW, item)
        queue.enqueue(QueueType.WORKFLOW, other)
        queue.enqueue(QueueType.WORKFLOW, item)

        counts = Counter(drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout))
        assert counts[other] == 1
        if self.deduplicates:
            assert counts[item] == 1
        else:
            assert 1 <= counts[item] <= 2

    def test_item_taken_can_be_queued_again(self, queue: QueueProvider) -> None:
        # A workflow re-queued while a consumer is still working on it must run again.
        item = new_id()
        queue.enqueue(QueueType.WORKFLOW, item)
        assert queue.dequeue(QueueType.WORKFLOW, self.empty_timeout) == item
        queue.enqueue(QueueType.WORKFLOW, item)
        queue.acknowledge(QueueType.WORKFLOW, item)
        assert drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout) == [item]

    def test_higher_priority_comes_out_first(self, queue: QueueProvider) -> None:
        if not self.honours_priority:
            pytest.skip(f"{type(queue).__name__} does not order by priority")
        queued = [(0, "a"), (5, "b"), (-3, "c"), (5, "d"), (1, "e"), (0, "f")]
        suffix = new_id()
        for priority, name in queued:
            queue.enqueue(QueueType.WORKFLOW, f"{name}-{suffix}", priority=priority)
        taken = [item.split("-")[0] for item in drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout)]
        if self.preserves_order:
            assert taken == ["b", "d", "e", "a", "f", "c"]
        else:
            assert sorted(taken) == sorted(name for _, name in queued)
            ranks = {name: -priority for priority, name in queued}
            assert [ranks[name] for name in taken] == sorted(ranks[name] for name in taken)

    def test_an_item_queued_again_moves_up_to_a_higher_priority_only(self, queue: QueueProvider) -> None:
        if not (self.honours_priority and self.deduplicates):
            pytest.skip(f"{type(queue).__name__} does not order by priority or de-duplicate")
        first, second, third = (f"{name}-{new_id()}" for name in ("first", "second", "third"))
        queue.enqueue(QueueType.WORKFLOW, first, priority=3)
        queue.enqueue(QueueType.WORKFLOW, second, priority=2)
        queue.enqueue(QueueType.WORKFLOW, third)
        queue.enqueue(QueueType.WORKFLOW, first)  # lower than it is: it keeps its place
        queue.enqueue(QueueType.WORKFLOW, third, priority=9)  # higher: it moves up
        assert drain(queue, QueueType.WORKFLOW, timeout=self.empty_timeout) == [third, first, second]
