"""The host's background threads: workflow and event workers, the poller, the timer thread and
the supervisor that restarts any of them that dies; and the health report built from what they
see. The host owns one :class:`Workers` and is reached through :class:`WorkersHost`.

Every loop here survives every error of a provider: it records the failure (see ``_health``),
pauses with a capped, jittered exponential delay, and goes on once the backend answers. Nothing is
lost meanwhile: the store holds every runnable instance and unprocessed event, and the poll queues
them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Protocol

from ._backoff import Backoff
from ._gil import let_others_run
from ._health import WORKER_GROUPS, Health, HealthMonitor, provider_failure
from ._options import HostOptions
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._starting_workflows import enqueue
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


class WorkersHost(Protocol):
    """What the threads need from the host that owns them (``WorkflowHost``)."""

    persistence: PersistenceProvider
    queue: QueueProvider
    lock: LockProvider
    options: HostOptions

    def _process_workflow(self, workflow_id: str) -> None:
        """One turn of a workflow."""

    def _process_event(self, event_id: str) -> None:
        """Deliver one event."""


class _Calling:
    """What :meth:`Workers.calling` returns: a context manager without state, so one per
    component is shared by every call and every thread (cheaper than a generator per call)."""

    __slots__ = ("_component", "_workers")

    def __init__(self, workers: Workers, component: str) -> None:
        self._workers, self._component = workers, component

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        workers = self._workers
        if error is None:
            workers._health.succeeded(self._component)
        elif isinstance(error, Exception):
            failed = provider_failure(error, workers._providers())
            if failed is not None:
                workers._health.failed(failed, error)


class Workers:
    """The host's threads (workers, poller, timers, supervisor) and the health report built from
    what they see; owned by the host."""

    def __init__(self, host: WorkersHost, health: HealthMonitor) -> None:
        self._host = host
        self._health = health
        self.timers: TimerQueue[tuple[QueueType, str, int]] = TimerQueue(
            self._fire_timer, on_error=self._timer_failed, on_success=self._timer_succeeded
        )
        self.threads: list[threading.Thread] = []
        self._targets: dict[str, Callable[[], None]] = {}
        self._deaths: dict[str, BaseException] = {}
        self._supervisor: threading.Thread | None = None
        self._wake_supervisor = threading.Event()
        self._running = False
        self._stopping = threading.Event()
        self._callings: dict[str, _Calling] = {}

    @property
    def running(self) -> bool:
        return self._running

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._running = True
        self.timers.start()
        options = self._host.options
        workers: list[tuple[str, Callable[[], None]]] = [
            (f"liteflow-workflow-{n}", self._workflow_worker) for n in range(options.max_concurrent_workflows)
        ]
        workers += [(f"liteflow-event-{n}", self._event_worker) for n in range(options.event_workers)]
        workers.append(("liteflow-poller", self._poller))
        for name, target in workers:
            self._targets[name] = target
            self.threads.append(self._spawn(name))
        self._supervisor = threading.Thread(target=self._supervise, name="liteflow-supervisor", daemon=True)
        self._supervisor.start()

    def stop_taking_work(self) -> None:
        """Tell every loop to end; returns once no thread is restarted any more."""
        self._running = False
        self._stopping.set()
        self._wake_supervisor.set()
        if self._supervisor is not None:
            self._supervisor.join()  # it no longer replaces threads, so the list is final

    def join(self, timeout: timedelta) -> None:
        """Wait up to ``timeout`` for the threads (their running steps), then stop the timers."""
        deadline = time.monotonic() + timeout.total_seconds()
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            logger.warning("host stopped while steps were still running in %s", ", ".join(stuck))
        self.threads.clear()
        self.timers.stop()

    # -- health --------------------------------------------------------------------------------

    def health(self) -> Health:
        """See :meth:`WorkflowHost.health`."""
        if not self._running:
            return self._health.snapshot(None, providers=self._providers())
        dead: dict[str, list[str]] = {name: [] for name in WORKER_GROUPS}
        for thread in list(self.threads):
            if not thread.is_alive():
                dead[_group_of(thread.name)].append(thread.name)
        if not self.timers.is_alive():
            dead["timer"].append("liteflow-timers")
        supervised = self._supervisor is not None and self._supervisor.is_alive()
        return self._health.snapshot(dead, live=supervised or not self._running, providers=self._providers())

    def calling(self, component: str) -> _Calling:
        """Record the outcome of a caller's provider call in the health report; errors go on up."""
        calling = self._callings.get(component)
        if calling is None:
            calling = self._callings[component] = _Calling(self, component)
        return calling

    def _providers(self) -> dict[str, object]:
        host = self._host
        return {"persistence": host.persistence, "queue": host.queue, "lock": host.lock}

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
        for index, thread in enumerate(self.threads):
            if thread.is_alive():
                continue
            cause = self._deaths.pop(thread.name, None)
            logger.error(
                "host thread %s died (%s); restarting it",
                thread.name,
                "no error recorded" if cause is None else f"{type(cause).__name__}: {cause}",
                exc_info=cause,
            )
            self.threads[index] = self._spawn(thread.name)
            restarted = True
        if self.timers.revive():
            logger.error("the timer thread died; restarted it")
            restarted = True
        return restarted

    # -- workers -------------------------------------------------------------------------------

    def _workflow_worker(self) -> None:
        self._consume(QueueType.WORKFLOW, self._host._process_workflow)

    def _event_worker(self) -> None:
        self._consume(QueueType.EVENT, self._host._process_event)

    def _consume(self, queue: QueueType, handle: Callable[[str], None]) -> None:
        idle = self._host.options.idle_timeout.total_seconds()
        group = _GROUP_OF_QUEUE[queue]
        backoff = Backoff(_FIRST_BACKOFF, MAX_BACKOFF)
        while self._running:
            let_others_run()  # between two items, holding no lock (see _gil)
            try:
                item_id = self._host.queue.dequeue(queue, idle)
            except Exception as error:
                if not self._running:
                    return  # the queue was closed under us by stop()
                self._health.failed("queue", error)
                self._health.failed(group, error)
                self._stopping.wait(backoff.next_delay())
                continue
            self._health.succeeded("queue")
            if item_id is not None and not self.handle(queue, item_id, handle):
                self._health.failed(group, f"a provider failed while processing {queue.value} {item_id}")
                self._stopping.wait(backoff.next_delay())
                continue
            self._health.succeeded(group)
            backoff.reset()

    def handle(self, queue: QueueType, item_id: str, handle: Callable[[str], None]) -> bool:
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
            self._host.queue.acknowledge(queue, item_id)
        except Exception as error:
            self._health.failed("queue", error)  # the item comes back: harmless, its lock or state refuses it
            return False
        return True

    def _poller(self) -> None:
        interval = self._host.options.poll_interval.total_seconds()
        backoff = Backoff(_FIRST_BACKOFF, MAX_BACKOFF)
        while not self._stopping.is_set():
            if self.poll():
                self._health.succeeded("poller")
                backoff.reset()
                delay = interval
            else:
                self._health.failed("poller", "the last poll of the store failed")
                # Sooner than usual: noticing the backend's return is what ends the outage.
                delay = min(backoff.next_delay(), interval)
            self._stopping.wait(delay)

    def poll(self) -> bool:
        """Queue everything the store says is due; False if a provider failed."""
        host, queued = self._host, False
        try:
            horizon = host.options.clock() + host.options.poll_interval
            runnable = host.persistence.get_runnable_instances(horizon)
            events = host.persistence.get_runnable_events(host.options.clock())
            self._health.succeeded("persistence")
            for workflow_id in runnable:
                host.queue.enqueue(QueueType.WORKFLOW, workflow_id)
                queued = True
            for event_id in events:
                host.queue.enqueue(QueueType.EVENT, event_id)
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

    # -- the timer thread ----------------------------------------------------------------------

    def _fire_timer(self, item: tuple[QueueType, str, int]) -> None:
        enqueue(self._host.queue, *item)

    def _timer_failed(self, error: Exception) -> None:
        failed = provider_failure(error, self._providers())
        self._health.failed(failed or "queue", error)
        self._health.failed("timer", error)

    def _timer_succeeded(self) -> None:
        self._health.succeeded("queue")
        self._health.succeeded("timer")
