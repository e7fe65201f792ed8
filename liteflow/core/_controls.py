"""Suspend, resume and terminate: applied at once when the workflow's lock is free, else recorded
as a request that whoever holds the lock applies before its next step (see docs/architecture.md).

A request is an event (``CONTROL_EVENT``, keyed by the workflow id, its data the action's name),
so it survives a crash and reaches a worker on any node.
"""

from __future__ import annotations

import enum
import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import _validation as check
from ._children import child_waits, children_to_end
from ._errors import InvalidOperationError, WorkflowNotFoundError
from ._interrupts import Cancellations
from ._models import Event, PointerStatus, WorkflowInstance, WorkflowStatus
from ._providers import QueueType

if TYPE_CHECKING:
    from ._delivery import DeliveryHost, WaitingDeliveries

logger = logging.getLogger("liteflow")

CONTROL_EVENT = "liteflow.control"
"""Suspend/resume/terminate requests made while a step was running, applied when it returns."""
_SLOW_STEP = timedelta(milliseconds=50)


class ControlAction(str, enum.Enum):
    """A control request; its value is what a recorded request stores as its event data."""

    SUSPEND = "suspend"
    RESUME = "resume"
    TERMINATE = "terminate"


_ALLOWED: dict[ControlAction, tuple[WorkflowStatus, ...]] = {
    ControlAction.SUSPEND: (WorkflowStatus.RUNNABLE,),
    ControlAction.RESUME: (WorkflowStatus.SUSPENDED,),
    ControlAction.TERMINATE: (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED),
}


def check_transition(instance: WorkflowInstance, action: ControlAction) -> None:
    """Raise InvalidOperationError unless ``action`` applies to the instance as it is."""
    if instance.status not in _ALLOWED[action]:
        raise InvalidOperationError(f"cannot {action.value} workflow {instance.id}: it is {instance.status.value}")
    if action is ControlAction.RESUME and instance.quarantined:
        raise InvalidOperationError(
            f"cannot resume workflow {instance.id}: it is quarantined, its stored data cannot be read;"
            " see get_workflow_errors, then terminate or purge it"
        )


def control_request(workflow_id: str, action: ControlAction, now: datetime) -> Event:
    """The event that records a request for whoever holds the workflow's lock."""
    return Event(CONTROL_EVENT, workflow_id, action.value, event_time=now)


class Controls:
    """The host's suspend/resume/terminate, owned by the host and called through ``DeliveryHost``."""

    def __init__(self, host: DeliveryHost, waiting: WaitingDeliveries, cancellations: Cancellations) -> None:
        self._host = host
        self._waiting = waiting
        self._cancellations = cancellations
        # Workflows with a request recorded on this node while a step ran: the worker that holds
        # the lock applies it itself before its next step (it may take the workflow back before
        # the event worker does, so yielding to the delivery alone can miss the request).
        self._recorded_here: set[str] = set()
        self._lock = threading.Lock()

    def request(self, workflow_id: str, action: ControlAction) -> None:
        """Apply ``action`` now if the workflow's lock is free, else record it for the holder."""
        host = self._host
        check.text(f"{action.value}_workflow", "workflow_id", workflow_id)
        instance = host.persistence.get_workflow_instance(workflow_id)
        check_transition(instance, action)
        if action is ControlAction.RESUME:
            host.registry.get(instance.workflow_definition_id, instance.version)
        if not host.lock.acquire(workflow_id):
            self._record(workflow_id, action)
            return
        try:
            instance = host.persistence.get_workflow_instance(workflow_id)
            check_transition(instance, action)
            self.apply(instance, action)
        finally:
            self._waiting.release(workflow_id)
        host._schedule(instance)

    def _record(self, workflow_id: str, action: ControlAction) -> None:
        """A step is running (here or on another node): record the request. A worker of this node
        sees it before its next step; the event itself covers the other nodes."""
        event = control_request(workflow_id, action, self._host.options.clock())
        self._host.persistence.create_event(event)
        self._waiting.note(workflow_id, event.id)
        with self._lock:
            self._recorded_here.add(workflow_id)
        if action is not ControlAction.RESUME:  # only now: a step that stops at once must find the request
            self._cancellations.cancel(workflow_id)
        self._host._announce(QueueType.EVENT, event.id)

    def apply(self, instance: WorkflowInstance, action: ControlAction) -> None:
        """Change the status of a locked instance and save it."""
        before, now, waits = instance.status, self._host.options.clock(), child_waits(instance)
        if action is ControlAction.SUSPEND:
            instance.status, instance.next_execution = WorkflowStatus.SUSPENDED, None
        elif action is ControlAction.RESUME:
            instance.status, instance.next_execution = WorkflowStatus.RUNNABLE, now
            for pointer in instance.execution_pointers:
                pointer.retries_before_resume = pointer.retry_count  # a fresh set of attempts
        else:
            instance.status, instance.next_execution, instance.complete_time = WorkflowStatus.TERMINATED, None, now
            for pointer in instance.execution_pointers:
                if pointer.end_time is None:
                    pointer.active, pointer.status, pointer.end_time = False, PointerStatus.CANCELLED, now
        self._host._save(instance, before)
        if action is ControlAction.TERMINATE:
            definition = self._host.registry.find(instance.workflow_definition_id, instance.version)
            self.end_children(children_to_end(instance, waits, definition))

    def end_children(self, child_ids: list[str]) -> None:
        """Terminate each child that is still runnable or suspended (its own children follow)."""
        for child_id in child_ids:
            try:
                self.request(child_id, ControlAction.TERMINATE)
            except (InvalidOperationError, WorkflowNotFoundError):
                continue  # it ended meanwhile, or was purged
            except Exception:  # one child's failure must not stop the others, nor the caller's turn
                logger.exception("could not terminate sub-workflow %s after its parent's step ended", child_id)
            else:
                logger.info("terminated sub-workflow %s: its parent's step ended first", child_id)

    def pending(self, instance: WorkflowInstance, now: datetime) -> Event | None:
        """A request recorded while this workflow's last step ran (on any node). Asked of the store
        after a slow step (a request can only have been recorded while the lock was held, and a
        turn of quick steps releases it soon enough), and whenever one was recorded on this node."""
        last_run: datetime | None = None  # the latest start; a loop, not max() over a generator (every pass)
        for pointer in instance.execution_pointers:
            started = pointer.start_time
            if started is not None and (last_run is None or started > last_run):
                last_run = started
        if last_run is None:
            last_run = now
        # Without the lock (every pass): a set's membership test is atomic; a request recorded
        # just after it is found by the next pass, or by the event that recorded it.
        recorded_here = instance.id in self._recorded_here
        if not recorded_here and now - last_run < _SLOW_STEP:
            return None
        pending = self._host.persistence.get_events(CONTROL_EVENT, instance.id, last_run)
        found = next((event for event in pending if not (event.is_processed or event.quarantined)), None)
        if found is None and recorded_here:
            with self._lock:
                self._recorded_here.discard(instance.id)
        return found

    def apply_recorded(self, instance: WorkflowInstance, event: Event) -> None:
        """Apply a recorded request to a locked instance and mark it handled."""
        action = ControlAction(event.event_data)
        if instance.status in _ALLOWED[action]:
            self.apply(instance, action)
        else:
            logger.info("%s of workflow %s dropped: it is %s", action.value, instance.id, instance.status.value)
        self._host.persistence.mark_event_processed(event.id)
        with self._lock:
            self._recorded_here.discard(instance.id)

    def deliver(self, event: Event) -> bool:
        """The event worker's part: apply a recorded request if its workflow's lock is free."""
        host, workflow_id = self._host, event.event_key
        if not host.lock.acquire(workflow_id):
            self._waiting.retry(event.id, workflow_id)
            return False
        try:
            if host.persistence.get_event(event.id).is_processed:
                return True  # applied meanwhile by the worker that held the lock
            instance = host.persistence.get_workflow_instance(workflow_id)
            self.apply_recorded(instance, event)
        finally:
            self._waiting.release(workflow_id)
        host._schedule(instance)
        return True
