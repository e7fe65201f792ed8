"""The host's background threads: workflow and event workers, the poller, and the supervisor that
restarts any of them that dies; and the health report built from what they see.

Every loop here survives every error of a provider: it records the failure (see ``_health``),
pauses with a capped, jittered exponential delay, and goes on once the backend answers. Nothing is
lost meanwhile: the store holds every runnable instance and unprocessed event, and the poll queues
them again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from ._backoff import Backoff
from ._delivery import EventDelivery
from ._health import WORKER_GROUPS, Health, HealthMonitor, provider_failure
from ._options import HostOptions
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._timers import TimerQueue

logger = logging.getLogger("liteflow")

MAX_BACKOFF = 2.0
"""Longest pause (s) of a loop whose backend fails; it also bounds how long after the backend's
return the loop notices."""
_FIRST_BACKOFF = 0.05
_SUPERVISE_EVERY = 1.0
_GROUP_OF_QUEUE = {QueueType.WORKFLOW: "workflow_workers", QueueType.EVENT: "event_workers"}


def _group_of(thread_name: str) -> str:
    if thread_name.startswith("liteflow-workflow-"):
        return "workflow_workers"
    if thread_name.startswith("liteflow-event-"):
        return "event_workers"
    return "poller"


class HostWorkers:
    """Base of :class:`WorkflowHost` holding its threads; the host provides the rest."""

    persistence: PersistenceProvider
    queue: QueueProvider
    lock: LockProvider
    options: HostOptions
    _health: HealthMonitor
    _timers: TimerQueue[tuple[QueueType, str, int]]
    _delivery: EventDelivery
    _running: bool
    _stopping: threading.Event
    _threads: list[threading.Thread]
    _targets: dict[str, Callable[[], None]]
    _deaths: dict[str, BaseException]
    _wake_supervisor: threading.Event
    _supervisor: threading.Thread | None

    def _process_workflow(self, workflow_id: str) -> None:
        raise NotImplementedError

    def _clock(self) -> datetime:
        raise NotImplementedError

    # -- health --------------------------------------------------------------------------------

    def health(self) -> Health:
        """How the host is doing: each provider, and while started each group of threads.

        A provider is not ok from its first failed call (a refused connection, a timeout) until
        one answers again; an idle host still calls its store at every poll, so a store outage
        shows within ``poll_interval``. A worker group is not ok while one of its threads fails
        or is dead; ``live`` is False only while a thread is dead. See the README for wiring it to
        liveness and readiness probes.
        """
        if not self._running:
            return self._health.snapshot(None, providers=self._providers())
        dead: dict[str, list[str]] = {name: [] for name in WORKER_GROUPS}
        for thread in list(self._threads):
            if not thread.is_alive():
                dead[_group_of(thread.name)].append(thread.name)
        if not self._timers.is_alive():
            dead["timer"].append("liteflow-timers")
        supervised = self._supervisor is not None and self._supervisor.is_alive()
        return self._health.snapshot(dead, live=supervised or not self._running, providers=self._providers())

    @contextmanager
    def _calling(self, component: str) -> Iterator[None]:
        """Record the outcome of a caller's provider call in the health report; errors go on up."""
        try:
            yield
        except Exception as error:
            failed = provider_failure(error, self._providers())
            if failed is not None:
                self._health.failed(failed, error)
            raise
        self._health.succeeded(component)

    def _providers(self) -> dict[str, object]:
        return {"persistence": self.persistence, "queue": self.queue, "lock": self.lock}

    # -- threads and their supervisor ----------------------------------------------------------

    def _spawn(self, name: str) -> threading.Thread:
        thread = threading.Thread(target=self._run_thread, args=(name,), name=name, daemon=True)
        thread.start()
        return thread

    def _run_thread(self, name: str) -> None:
        try:
            self._targets[name]()
        except BaseException as error:  # even SystemExit from a step: the supervisor says why
            self._deaths[name] = error
            self._health.failed(_group_of(name), error)
            self._wake_supervisor.set()

    def _supervise(self) -> None:
        backoff = Backoff(_FIRST_BACKOFF, MAX_BACKOFF)
        while self._running:
            self._wake_supervisor.wait(_SUPERVISE_EVERY)
            self._wake_supervisor.clear()
            try:
                restarted = self._revive() if self._running else False
            except Exception:
                logger.exception("checking the host's threads failed")
                restarted = True
            if restarted:  # a thread that dies at once must not be restarted in a tight loop
                self._stopping.wait(backoff.next_delay())
            else:
                backoff.reset()

    def _revive(self) -> bool:
        """Restart every dead host thread; True if there was one."""
        restarted = False
        for index, thread in enumerate(self._threads):
            if thread.is_alive():
                continue
            cause = self._deaths.pop(thread.name, None)
            logger.error(
                "host thread %s died (%s); restarting it",
                thread.name,
                "no error recorded" if cause is None else f"{type(cause).__name__}: {cause}",
                exc_info=cause,
            )
            self._threads[index] = self._spawn(thread.name)
            restarted = True
        if self._timers.revive():
            logger.error("the timer thread died; restarted it")
            restarted = True
        return restarted

    # -- workers -------------------------------------------------------------------------------

    def _workflow_worker(self) -> None:
        self._consume(QueueType.WORKFLOW, self._process_workflow)

    def _event_worker(self) -> None:
        self._consume(QueueType.EVENT, self._delivery.process)

    def _consume(self, queue: QueueType, handle: Callable[[str], None]) -> None:
        idle = self.options.idle_timeout.total_seconds()
        group = _GROUP_OF_QUEUE[queue]
        backoff = Backoff(_FIRST_BACKOFF, MAX_BACKOFF)
        while self._running:
            try:
                item_id = self.queue.dequeue(queue, idle)
            except Exception as error:
                if not self._running:
                    return  # the queue was closed under us by stop()
                self._health.failed("queue", error)
                self._health.failed(group, error)
                self._stopping.wait(backoff.next_delay())
                continue
            self._health.succeeded("queue")
            if item_id is not None and not self._handle(queue, item_id, handle):
                self._health.failed(group, f"a provider failed while processing {queue.value} {item_id}")
                self._stopping.wait(backoff.next_delay())
                continue
            self._health.succeeded(group)
            backoff.reset()

    def _handle(self, queue: QueueType, item_id: str, handle: Callable[[str], None]) -> bool:
        """Process one item and acknowledge it; False if a provider failed (the caller backs off).

        A failed item is not lost: what it needs is in the store, and the poll queues it again."""
        try:
            handled = self._run_handler(queue, item_id, handle)
        finally:  # even when a step's SystemExit is taking the thread down
            acknowledged = self._acknowledge(queue, item_id)
        return handled and acknowledged

    def _run_handler(self, queue: QueueType, item_id: str, handle: Callable[[str], None]) -> bool:
        try:
            handle(item_id)
        except Exception as error:
            failed = provider_failure(error, self._providers())
            if failed is None:
                logger.exception("failed to process %s %s; the poller will retry it", queue.value, item_id)
                return True  # a bug or bad data, not an outage: no reason to pause
            self._health.failed(failed, error)  # logged once per outage, not per item
            return False
        self._health.succeeded("lock")  # every handler takes a lock first
        return True

    def _acknowledge(self, queue: QueueType, item_id: str) -> bool:
        try:
            self.queue.acknowledge(queue, item_id)
        except Exception as error:
            self._health.failed("queue", error)  # the item comes back: harmless, its lock or state refuses it
            return False
        return True

    def _poller(self) -> None:
        interval = self.options.poll_interval.total_seconds()
        backoff = Backoff(_FIRST_BACKOFF, MAX_BACKOFF)
        while not self._stopping.is_set():
            if self._poll():
                self._health.succeeded("poller")
                backoff.reset()
                delay = interval
            else:
                self._health.failed("poller", "the last poll of the store failed")
                # Sooner than usual: noticing the backend's return is what ends the outage.
                delay = min(backoff.next_delay(), interval)
            self._stopping.wait(delay)

    def poll(self) -> None:
        """Queue everything the store says is due (the workers set timers for what is not yet)."""
        self._poll()

    def _poll(self) -> bool:
        """:meth:`poll`; False if a provider failed."""
        queued = False
        try:
            horizon = self._clock() + self.options.poll_interval
            runnable = self.persistence.get_runnable_instances(horizon)
            events = self.persistence.get_runnable_events(self._clock())
            self._health.succeeded("persistence")
            for workflow_id in runnable:
                self.queue.enqueue(QueueType.WORKFLOW, workflow_id)
                queued = True
            for event_id in events:
                self.queue.enqueue(QueueType.EVENT, event_id)
                queued = True
        except Exception as error:
            failed = provider_failure(error, self._providers())
            if failed is None:
                logger.exception("polling the store for runnable work failed")
                return True  # not an outage: the next poll comes at the usual interval
            self._health.failed(failed, error)
            return False
        if queued:
            self._health.succeeded("queue")
        return True

    # -- the timer thread's reports ------------------------------------------------------------

    def _timer_failed(self, error: Exception) -> None:
        failed = provider_failure(error, self._providers())
        self._health.failed(failed or "queue", error)
        self._health.failed("timer", error)

    def _timer_succeeded(self) -> None:
        self._health.succeeded("queue")
        self._health.succeeded("timer")
