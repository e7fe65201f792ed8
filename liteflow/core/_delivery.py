"""Event delivery: the part of the host that hands published events and direct results to waiting
steps, and routes recorded control requests to ``_controls``.

Delivery rule: a waiting step gets the oldest event (at or after its subscription's as-of time)
that its workflow has not consumed yet. Both paths apply it: the event worker when an event is
published (to every subscription that exists), and the workflow worker right after it saves a new
subscription (for events published before the wait was reached). Each path writes under the
workflow's lock and ends the subscription in the same save, so a step gets one event once.

The host owns these objects and is reached through :class:`DeliveryHost`, the little they need of it.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from ._controls import CONTROL_EVENT, Controls
from ._errors import WorkflowNotFoundError
from ._lifecycle import StepEvent
from ._models import (
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
)
from ._options import HostOptions
from ._primitives import DIRECT_WAIT_PREFIX, awaits_result
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._quarantine import needs_quarantine, quarantine, set_aside
from ._registry import WorkflowRegistry
from ._timers import TimerQueue

logger = logging.getLogger("liteflow")

_EVENT_LOCK_PREFIX = "event:"
DIRECT_RESULT_EVENT = "liteflow.direct-result"
"""The result for one waiting step (an activity's result, a person's answer), keyed by its
workflow id: stored and queued like any event, so it survives a crash and reaches the step once."""
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)


class DeliveryHost(Protocol):
    """What delivery and controls need from the host that owns them (``WorkflowHost``)."""

    persistence: PersistenceProvider
    queue: QueueProvider
    lock: LockProvider
    registry: WorkflowRegistry
    options: HostOptions

    def _save(
        self,
        instance: WorkflowInstance,
        before: WorkflowStatus,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        step_events: Sequence[tuple[StepEvent, ExecutionPointer]] = (),
    ) -> None:
        """Persist a locked instance and tell everyone who cares what changed."""

    def _schedule(self, instance: WorkflowInstance) -> None:
        """Queue the instance's next turn (now, or by a timer)."""

    def _announce(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        """Queue an item whose state the store already holds; never raises."""

    def _continue_turn(self, instance: WorkflowInstance) -> None:
        """Go on with the turn of an instance this thread has locked, loaded and saved, or queue
        it; the lock is released either way."""


class WaitingDeliveries:
    """Deliveries (events, control requests) that found their workflow locked on this node: retried
    as soon as it is released here, and by a timer with a growing delay in case another node holds
    it. A workflow worker that sees one waiting yields its turn to it."""

    def __init__(self, host: DeliveryHost, timers: TimerQueue[tuple[QueueType, str, int]]) -> None:
        self._host = host
        self._timers = timers
        self._events: defaultdict[str, set[str]] = defaultdict(set)
        self._retries: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, workflow_id: str, event_id: str) -> None:
        """Announce ``event_id`` again when this node releases ``workflow_id``."""
        with self._lock:
            self._events[workflow_id].add(event_id)

    def retry(self, event_id: str, workflow_id: str) -> None:
        """An event could not be delivered because its workflow was busy: retry when this node
        releases it, and with a growing delay in case another node holds it."""
        with self._lock:
            self._events[workflow_id].add(event_id)
            attempt = self._retries.get(event_id, 0)
            self._retries[event_id] = attempt + 1
        delay = min(self._host.options.lock_retry_delay.total_seconds() * 2**attempt, 1.0)
        self._timers.call_later(delay, (QueueType.EVENT, event_id, 0))

    def delivered(self, event_id: str) -> None:
        with self._lock:
            self._retries.pop(event_id, None)

    def waits_for(self, workflow_id: str) -> bool:
        """Whether a delivery or control request waits for this workflow's lock."""
        # Without the lock (asked at every pass): one dict read and a set's size, each atomic; an
        # add racing with it is seen at the next pass or, after the turn, by release().
        return bool(self._events.get(workflow_id))

    def release(self, workflow_id: str) -> None:
        """Release a workflow lock and retry at once the deliveries that found it busy."""
        self._host.lock.release(workflow_id)
        if workflow_id not in self._events:
            # Nothing waits (once per turn): read without the lock, one atomic lookup. A note()
            # racing with it is one made after this release; the event it notes is queued and
            # retried by its own timer (see retry and Controls._record) either way.
            return
        with self._lock:
            waiting = self._events.pop(workflow_id, ())
        for event_id in waiting:
            self._host._announce(QueueType.EVENT, event_id)


def quarantine_if_unreadable(host: DeliveryHost, instance: WorkflowInstance) -> None:
    """Record the quarantine of an unreadable instance met for the first time. Lock held."""
    if needs_quarantine(instance):
        host._save(instance, WorkflowStatus.RUNNABLE, errors=[quarantine(instance, host.options.clock())])


class EventDelivery:
    """Hands events and direct results to waiting steps; owned by the host."""

    def __init__(self, host: DeliveryHost, waiting: WaitingDeliveries, controls: Controls) -> None:
        self._host = host
        self._waiting = waiting
        self._controls = controls

    def process(self, event_id: str) -> None:
        """The event worker's turn: deliver one event wherever it is awaited, go on with the turn of
        the last workflow it resumed, then mark the event processed.

        The last workflow resumed is still locked and loaded: going on with it here saves unlocking
        it and queueing it for a workflow worker to take, lock and load again (if a turn slot is
        free: ``WorkflowHost._continue_turn``). The others are queued as soon as each is saved, so
        an event that wakes many workflows still spreads over the workflow workers; the turn is
        bounded as any (``max_passes_per_turn``). It runs before the mark, a commit that waits for
        its flush, which the resumed step need not wait for: if the node dies in between, the event
        is delivered again, to nobody (its subscriptions ended with the delivery's save)."""
        resumed: list[WorkflowInstance] = []  # at most one, its lock held
        try:
            self._deliver_event(event_id, resumed)
        except BaseException:
            for instance in resumed:  # its turn did not start
                self._waiting.release(instance.id)
                self._host._schedule(instance)
            raise

    def _deliver_event(self, event_id: str, resumed: list[WorkflowInstance]) -> None:
        host, lock_name = self._host, _EVENT_LOCK_PREFIX + event_id
        if not host.lock.acquire(lock_name):
            return
        try:
            event = host.persistence.get_event(event_id)
            if event.is_processed:
                return
            if event.quarantined:
                set_aside(host.persistence, event)
                return
            if event.event_name == CONTROL_EVENT:
                delivered = self._controls.deliver(event)
            elif event.event_name == DIRECT_RESULT_EVENT:
                delivered = self._deliver_direct(event, resumed)
            else:
                subscriptions = host.persistence.get_subscriptions(event.event_name, event.event_key, event.event_time)
                last = len(subscriptions) - 1
                results = [
                    self._deliver_to(s, event, resumed if n == last else None) for n, s in enumerate(subscriptions)
                ]
                delivered = all(results)  # to every subscription, even after a failed one
            if resumed:
                host._continue_turn(resumed.pop())  # which releases its lock, whatever happens
            if delivered:
                host.persistence.mark_event_processed(event_id)
                self._waiting.delivered(event_id)
        finally:
            host.lock.release(lock_name)

    def recheck_waits(self, instance: WorkflowInstance) -> None:
        """Look for published events for every waiting step of a due instance. Normally done right
        after its subscription is saved; this covers a node that died in between. Lock held."""
        for pointer in list(instance.execution_pointers):
            name = pointer.event_name
            if pointer.status is PointerStatus.WAITING_FOR_EVENT and name and not name.startswith(DIRECT_WAIT_PREFIX):
                key = pointer.event_key or ""
                for subscription in self._host.persistence.get_subscriptions(name, key, self._host.options.clock()):
                    if subscription.execution_pointer_id == pointer.id:
                        self.deliver_published(instance, subscription)

    def deliver_published(self, instance: WorkflowInstance, subscription: EventSubscription) -> bool:
        """Give a waiting step the oldest event (at or after its subscription's as-of time) that its
        workflow has not consumed yet, if there is one. This delivers events in order, and also
        those published before the workflow reached its wait. Lock held."""
        consumed = instance.consumed_events()
        events = self._host.persistence.get_events(
            subscription.event_name, subscription.event_key, subscription.subscribe_as_of
        )
        event = next((e for e in events if e.id not in consumed and not e.quarantined), None)
        if event is None:
            return False
        self._apply_event(instance, subscription, event)
        return True

    def _apply_event(self, instance: WorkflowInstance, subscription: EventSubscription, event: Event) -> None:
        pointer = instance.pointer(subscription.execution_pointer_id)
        assert pointer is not None
        pointer.event_id = event.id
        pointer.event_data = event.event_data
        pointer.event_published = True
        pointer.active = True
        pointer.status = PointerStatus.PENDING
        pointer.sleep_until = None  # a wait that would also wake at a time (a user task's escalation)
        if instance.status is WorkflowStatus.RUNNABLE:
            instance.next_execution = self._host.options.clock()
        self._host._save(instance, instance.status, terminated_subscriptions=[subscription.id])

    def _deliver_to(
        self, subscription: EventSubscription, event: Event, resumed: list[WorkflowInstance] | None = None
    ) -> bool:
        """Deliver to one subscription; False when its workflow is busy and this must be retried.
        A workflow it resumes is queued, or kept locked in ``resumed`` if one is given."""
        host, workflow_id = self._host, subscription.workflow_id
        try:  # lock and load in one round trip where the store can (see WorkflowTurn.run)
            loaded = host.persistence.acquire_and_load(host.lock, workflow_id)
        except WorkflowNotFoundError:
            return True  # purged meanwhile (the lock given back)
        if loaded is False or (loaded is None and not host.lock.acquire(workflow_id)):
            self._waiting.retry(event.id, workflow_id)
            return False
        kept = False
        try:
            instance = host.persistence.get_workflow_instance(workflow_id) if loaded is None else loaded
            quarantine_if_unreadable(host, instance)
            pointer = instance.pointer(subscription.execution_pointer_id)
            waiting = pointer is not None and pointer.status is PointerStatus.WAITING_FOR_EVENT
            if not waiting or instance.is_finished:
                host._save(instance, instance.status, terminated_subscriptions=[subscription.id])
                return True
            # Not necessarily ``event``: an older one this workflow has not consumed goes first.
            # If the workflow already has every event, the step waits for the next one.
            kept = self.deliver_published(instance, subscription) and _keep(instance, resumed)
        except WorkflowNotFoundError:
            return True  # purged meanwhile
        finally:
            if not kept:
                self._waiting.release(workflow_id)
        if not kept:
            host._schedule(instance)
        return True

    # -- direct results (activities, user tasks) -----------------------------------------------

    def submit_direct(self, workflow_id: str, pointer_id: str, wait: str, attempt: int, payload: Any) -> str:
        """Record a result for the step ``pointer_id`` waiting on ``wait`` in attempt ``attempt``;
        whichever node is free applies it (see :meth:`_deliver_direct`). Returns the event id."""
        data = {"pointer": pointer_id, "wait": wait, "attempt": attempt, "payload": payload}
        event = Event(DIRECT_RESULT_EVENT, workflow_id, data, event_time=self._host.options.clock())
        self._host.persistence.create_event(event)
        self._host.queue.enqueue(QueueType.EVENT, event.id)
        return event.id

    def _pointer_subscriptions(self, pointer: ExecutionPointer) -> list[EventSubscription]:
        """Every open subscription of a pointer, also those not visible yet (a claimed activity)."""
        found = self._host.persistence.get_subscriptions(pointer.event_name or "", pointer.event_key or "", _FAR_FUTURE)
        return [s for s in found if s.execution_pointer_id == pointer.id]

    def _deliver_direct(self, event: Event, resumed: list[WorkflowInstance]) -> bool:
        """Apply a direct result if its step still waits for it; a second result for the same
        step finds it no longer waiting and is dropped, so a result is applied once. The workflow
        is kept locked in ``resumed``, as the last one an event resumes is."""
        host, workflow_id, data = self._host, event.event_key, event.event_data
        if not host.lock.acquire(workflow_id):
            self._waiting.retry(event.id, workflow_id)
            return False
        kept = False
        try:
            instance = host.persistence.get_workflow_instance(workflow_id)
            pointer = instance.pointer(data["pointer"])
            if instance.is_finished or pointer is None or not awaits_result(pointer, data["wait"], data["attempt"]):
                logger.info("result for step %s of workflow %s dropped: not awaited", data["pointer"], workflow_id)
                return True
            subscriptions = self._pointer_subscriptions(pointer)
            pointer.event_id, pointer.event_data, pointer.event_published = event.id, data["payload"], True
            pointer.active, pointer.status, pointer.sleep_until = True, PointerStatus.PENDING, None
            if instance.status is WorkflowStatus.RUNNABLE:
                instance.next_execution = host.options.clock()
            host._save(instance, instance.status, terminated_subscriptions=[s.id for s in subscriptions])
            kept = _keep(instance, resumed)
        except WorkflowNotFoundError:
            return True  # purged meanwhile
        finally:
            if not kept:
                self._waiting.release(workflow_id)
        if not kept:
            host._schedule(instance)
        return True


def _keep(instance: WorkflowInstance, resumed: list[WorkflowInstance] | None) -> bool:
    """Whether the caller keeps the lock of a workflow it has resumed, to go on with its turn."""
    if resumed is None or instance.status is not WorkflowStatus.RUNNABLE:
        return False  # a suspended one gets its event now and runs when resumed
    resumed.append(instance)
    return True
