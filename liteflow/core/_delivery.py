"""Event delivery and control requests: the part of the host that hands published events to
waiting steps and applies suspend/resume/terminate, also while a step runs.

Delivery rule: a waiting step gets the oldest event (at or after its subscription's as-of time)
that its workflow has not consumed yet. Both paths apply it: the event worker when an event is
published (to every subscription that exists), and the workflow worker right after it saves a new
subscription (for events published before the wait was reached). Each path writes under the
workflow's lock and ends the subscription in the same save, so a step gets one event once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _validation as check
from ._children import child_waits, children_to_end, end_children
from ._errors import InvalidOperationError, WorkflowNotFoundError
from ._health import HealthMonitor
from ._interrupts import Cancellations
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
from ._primitives import DIRECT_WAIT_PREFIX
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._quarantine import needs_quarantine, quarantine, set_aside
from ._registry import WorkflowRegistry
from ._starting_workflows import enqueue
from ._timers import TimerQueue

logger = logging.getLogger("liteflow")

_EVENT_LOCK_PREFIX = "event:"
_SLOW_STEP = timedelta(milliseconds=50)
CONTROL_EVENT = "liteflow.control"
"""Suspend/resume/terminate requests made while a step was running, applied when it returns."""

DIRECT_RESULT_EVENT = "liteflow.direct-result"
"""The result for one waiting step (an activity's result, a person's answer), keyed by its
workflow id: stored and queued like any event, so it survives a crash and reaches the step once."""
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)

_ALLOWED: dict[str, tuple[WorkflowStatus, ...]] = {
    "suspend": (WorkflowStatus.RUNNABLE,),
    "resume": (WorkflowStatus.SUSPENDED,),
    "terminate": (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED),
}


class EventDelivery:
    """Base of :class:`WorkflowHost` holding delivery and controls; the host provides the rest."""

    persistence: PersistenceProvider
    queue: QueueProvider
    lock: LockProvider
    options: HostOptions
    registry: WorkflowRegistry
    _timers: TimerQueue[tuple[QueueType, str, int]]
    _cancellations: Cancellations
    _health: HealthMonitor

    def __init__(self) -> None:
        # Events whose delivery found their workflow busy: retried as soon as it is released here.
        self._blocked: defaultdict[str, set[str]] = defaultdict(set)
        self._blocked_retries: dict[str, int] = {}
        # Workflows with a control request recorded on this node while a step ran: the worker that
        # holds the lock applies it itself before its next step (it may take the workflow back
        # before the event worker does, so yielding to the delivery alone can miss the request).
        self._controls_here: set[str] = set()
        self._blocked_lock = threading.Lock()

    def _clock(self) -> datetime:
        return self.options.clock()

    def _save(
        self,
        instance: WorkflowInstance,
        before: WorkflowStatus,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        step_events: Sequence[tuple[str, ExecutionPointer]] = (),
    ) -> None:
        raise NotImplementedError

    def _schedule(self, instance: WorkflowInstance) -> None:
        raise NotImplementedError

    def _announce(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        """Queue an item whose state the store already holds. If the queue fails, nothing is lost
        (the poll finds the item in the store), so the call that saved it happened and must not
        raise: the queue is reported degraded instead."""
        try:
            enqueue(self.queue, queue, item_id, priority)
        except Exception as error:
            self._health.failed("queue", error)
            logger.debug("could not queue %s %s; the poll will: %s", queue.value, item_id, error)
        else:
            self._health.succeeded("queue")

    def _control(self, workflow_id: str, action: str) -> None:
        check.text(f"{action}_workflow", "workflow_id", workflow_id)
        instance = self.persistence.get_workflow_instance(workflow_id)
        self._check_transition(instance, action)
        if action == "resume":
            self.registry.get(instance.workflow_definition_id, instance.version)
        if not self.lock.acquire(workflow_id):
            # A step is running (here or on another node): record the request. A worker of this
            # node sees it before its next step; the event itself covers the other nodes.
            event = Event(CONTROL_EVENT, workflow_id, action, event_time=self._clock())
            self.persistence.create_event(event)
            with self._blocked_lock:
                self._blocked[workflow_id].add(event.id)
                self._controls_here.add(workflow_id)
            if action != "resume":  # only now: a step that stops at once must find the request
                self._cancellations.cancel(workflow_id)
            self._announce(QueueType.EVENT, event.id)
            return
        try:
            instance = self.persistence.get_workflow_instance(workflow_id)
            self._check_transition(instance, action)
            self._apply_control(instance, action)
        finally:
            self._release(workflow_id)
        self._schedule(instance)

    @staticmethod
    def _check_transition(instance: WorkflowInstance, action: str) -> None:
        if instance.status not in _ALLOWED[action]:
            raise InvalidOperationError(f"cannot {action} workflow {instance.id}: it is {instance.status.value}")
        if action == "resume" and instance.quarantined:
            raise InvalidOperationError(
                f"cannot resume workflow {instance.id}: it is quarantined, its stored data cannot be read;"
                " see get_workflow_errors, then terminate or purge it"
            )

    def _quarantine_if_unreadable(self, instance: WorkflowInstance) -> None:
        """Record the quarantine of an unreadable instance met for the first time. Lock held."""
        if needs_quarantine(instance):
            self._save(instance, WorkflowStatus.RUNNABLE, errors=[quarantine(instance, self._clock())])

    def _apply_control(self, instance: WorkflowInstance, action: str) -> None:
        """Change the status of a locked instance and save it."""
        before, now, waits = instance.status, self._clock(), child_waits(instance)
        if action == "suspend":
            instance.status, instance.next_execution = WorkflowStatus.SUSPENDED, None
        elif action == "resume":
            instance.status, instance.next_execution = WorkflowStatus.RUNNABLE, now
            for pointer in instance.execution_pointers:
                pointer.retries_before_resume = pointer.retry_count  # a fresh set of attempts
        else:
            instance.status, instance.next_execution, instance.complete_time = WorkflowStatus.TERMINATED, None, now
            for pointer in instance.execution_pointers:
                if pointer.end_time is None:
                    pointer.active, pointer.status, pointer.end_time = False, PointerStatus.CANCELLED, now
        self._save(instance, before)
        if action == "terminate":
            definition = self.registry.find(instance.workflow_definition_id, instance.version)
            end_children(self, children_to_end(instance, waits, definition))

    def _release(self, workflow_id: str) -> None:
        """Release a workflow lock and retry at once the event deliveries that found it busy."""
        self.lock.release(workflow_id)
        with self._blocked_lock:
            waiting = self._blocked.pop(workflow_id, ())
        for event_id in waiting:
            self._announce(QueueType.EVENT, event_id)

    def _retry_blocked(self, event_id: str, workflow_id: str) -> None:
        """An event could not be delivered because its workflow was busy: retry when this node
        releases it, and with a growing delay in case another node holds it."""
        with self._blocked_lock:
            self._blocked[workflow_id].add(event_id)
            attempt = self._blocked_retries.get(event_id, 0)
            self._blocked_retries[event_id] = attempt + 1
        delay = min(self.options.lock_retry_delay.total_seconds() * 2**attempt, 1.0)
        self._timers.call_later(delay, (QueueType.EVENT, event_id, 0))

    def _recheck_waits(self, instance: WorkflowInstance) -> None:
        """Look for published events for every waiting step of a due instance. Normally done right
        after its subscription is saved; this covers a node that died in between."""
        for pointer in list(instance.execution_pointers):
            name = pointer.event_name
            if pointer.status is PointerStatus.WAITING_FOR_EVENT and name and not name.startswith(DIRECT_WAIT_PREFIX):
                key = pointer.event_key or ""
                for subscription in self.persistence.get_subscriptions(name, key, self._clock()):
                    if subscription.execution_pointer_id == pointer.id:
                        self._deliver_published(instance, subscription)

    def _pending_control(self, workflow_id: str, instance: WorkflowInstance, now: datetime) -> Event | None:
        """A suspend/resume/terminate request recorded while this workflow's last step ran (on any
        node). Asked of the store after a slow step (a request can only have been recorded while
        the lock was held, and a turn of quick steps releases it soon enough), and whenever one was
        recorded on this node."""
        last_run: datetime | None = None  # the latest start; a loop, not max() over a generator (every pass)
        for pointer in instance.execution_pointers:
            started = pointer.start_time
            if started is not None and (last_run is None or started > last_run):
                last_run = started
        if last_run is None:
            last_run = now
        with self._blocked_lock:
            recorded_here = workflow_id in self._controls_here
        if not recorded_here and now - last_run < _SLOW_STEP:
            return None
        pending = self.persistence.get_events(CONTROL_EVENT, workflow_id, last_run)
        found = next((event for event in pending if not (event.is_processed or event.quarantined)), None)
        if found is None and recorded_here:
            with self._blocked_lock:
                self._controls_here.discard(workflow_id)
        return found

    def _apply_control_event(self, instance: WorkflowInstance, event: Event) -> None:
        """Apply a recorded control request to a locked instance and mark it handled."""
        if instance.status in _ALLOWED[event.event_data]:
            self._apply_control(instance, event.event_data)
        else:
            logger.info("%s of workflow %s dropped: it is %s", event.event_data, instance.id, instance.status.value)
        self.persistence.mark_event_processed(event.id)
        with self._blocked_lock:
            self._controls_here.discard(instance.id)

    def _deliver_published(self, instance: WorkflowInstance, subscription: EventSubscription) -> bool:
        """Give a waiting step the oldest event (at or after its subscription's as-of time) that its
        workflow has not consumed yet, if there is one. This delivers events in order, and also
        those published before the workflow reached its wait. Lock held."""
        consumed = {p.event_id for p in instance.execution_pointers if p.event_id}
        events = self.persistence.get_events(
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
            instance.next_execution = self._clock()
        self._save(instance, instance.status, terminated_subscriptions=[subscription.id])

    def _process_event(self, event_id: str) -> None:
        lock_name = _EVENT_LOCK_PREFIX + event_id
        if not self.lock.acquire(lock_name):
            return
        try:
            event = self.persistence.get_event(event_id)
            if event.is_processed:
                return
            if event.quarantined:
                set_aside(self.persistence, event)
                return
            if event.event_name == CONTROL_EVENT:
                delivered = self._deliver_control(event)
            elif event.event_name == DIRECT_RESULT_EVENT:
                delivered = self._deliver_direct(event)
            else:
                subscriptions = self.persistence.get_subscriptions(event.event_name, event.event_key, event.event_time)
                delivered = all([self._deliver_to(s, event) for s in subscriptions])  # noqa: C419 - deliver to all
            if delivered:
                self.persistence.mark_event_processed(event_id)
                with self._blocked_lock:
                    self._blocked_retries.pop(event_id, None)
        finally:
            self.lock.release(lock_name)

    def _deliver_control(self, event: Event) -> bool:
        workflow_id = event.event_key
        if not self.lock.acquire(workflow_id):
            self._retry_blocked(event.id, workflow_id)
            return False
        try:
            if self.persistence.get_event(event.id).is_processed:
                return True  # applied meanwhile by the worker that held the lock
            instance = self.persistence.get_workflow_instance(workflow_id)
            self._apply_control_event(instance, event)
        finally:
            self._release(workflow_id)
        self._schedule(instance)
        return True

    def _deliver_to(self, subscription: EventSubscription, event: Event) -> bool:
        """Deliver to one subscription; False when its workflow is busy and this must be retried."""
        if not self.lock.acquire(subscription.workflow_id):
            self._retry_blocked(event.id, subscription.workflow_id)
            return False
        try:
            instance = self.persistence.get_workflow_instance(subscription.workflow_id)
            self._quarantine_if_unreadable(instance)
            pointer = instance.pointer(subscription.execution_pointer_id)
            waiting = pointer is not None and pointer.status is PointerStatus.WAITING_FOR_EVENT
            if not waiting or instance.is_finished:
                self._save(instance, instance.status, terminated_subscriptions=[subscription.id])
                return True
            # Not necessarily ``event``: an older one this workflow has not consumed goes first.
            # If the workflow already has every event, the step waits for the next one.
            self._deliver_published(instance, subscription)
        except WorkflowNotFoundError:
            return True  # purged meanwhile
        finally:
            self._release(subscription.workflow_id)
        self._schedule(instance)
        return True

    # -- direct results (activities, user tasks) -----------------------------------------------

    def _submit_direct(self, workflow_id: str, pointer_id: str, wait: str, attempt: int, payload: Any) -> str:
        """Record a result for the step ``pointer_id`` waiting on ``wait`` in attempt ``attempt``;
        whichever node is free applies it (see :meth:`_deliver_direct`). Returns the event id."""
        data = {"pointer": pointer_id, "wait": wait, "attempt": attempt, "payload": payload}
        event = Event(DIRECT_RESULT_EVENT, workflow_id, data, event_time=self._clock())
        self.persistence.create_event(event)
        self.queue.enqueue(QueueType.EVENT, event.id)
        return event.id

    @staticmethod
    def _awaits(pointer: ExecutionPointer | None, wait: str, attempt: int) -> bool:
        """Whether a pointer still waits for a direct result of this kind and attempt."""
        return (
            pointer is not None
            and pointer.status is PointerStatus.WAITING_FOR_EVENT
            and pointer.event_name == wait
            and pointer.retry_count == attempt
        )

    def _pointer_subscriptions(self, pointer: ExecutionPointer) -> list[EventSubscription]:
        """Every open subscription of a pointer, also those not visible yet (a claimed activity)."""
        found = self.persistence.get_subscriptions(pointer.event_name or "", pointer.event_key or "", _FAR_FUTURE)
        return [s for s in found if s.execution_pointer_id == pointer.id]

    def _deliver_direct(self, event: Event) -> bool:
        """Apply a direct result if its step still waits for it; a second result for the same
        step finds it no longer waiting and is dropped, so a result is applied once."""
        workflow_id, data = event.event_key, event.event_data
        if not self.lock.acquire(workflow_id):
            self._retry_blocked(event.id, workflow_id)
            return False
        try:
            instance = self.persistence.get_workflow_instance(workflow_id)
            pointer = instance.pointer(data["pointer"])
            if instance.is_finished or pointer is None or not self._awaits(pointer, data["wait"], data["attempt"]):
                logger.info("result for step %s of workflow %s dropped: not awaited", data["pointer"], workflow_id)
                return True
            subscriptions = self._pointer_subscriptions(pointer)
            pointer.event_id, pointer.event_data, pointer.event_published = event.id, data["payload"], True
            pointer.active, pointer.status, pointer.sleep_until = True, PointerStatus.PENDING, None
            if instance.status is WorkflowStatus.RUNNABLE:
                instance.next_execution = self._clock()
            self._save(instance, instance.status, terminated_subscriptions=[s.id for s in subscriptions])
        except WorkflowNotFoundError:
            return True  # purged meanwhile
        finally:
            self._release(workflow_id)
        self._schedule(instance)
        return True
