"""Lifecycle events and workflow middleware: how applications observe and wrap workflows."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ._models import Event, ExecutionError, ExecutionPointer, WorkflowInstance, WorkflowStatus

logger = logging.getLogger("liteflow")


class LifecycleEventType(str, enum.Enum):
    """What a :class:`LifecycleEvent` reports: a workflow started, completed, terminated, suspended,
    resumed or failed, or a step started or completed."""

    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_TERMINATED = "workflow_terminated"
    WORKFLOW_SUSPENDED = "workflow_suspended"
    WORKFLOW_RESUMED = "workflow_resumed"
    WORKFLOW_ERROR = "workflow_error"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"


class StepEvent(enum.Enum):
    """What the executor reports of a step in a pass; published after the save as a
    :class:`LifecycleEvent` of the matching type."""

    STARTED = LifecycleEventType.STEP_STARTED
    """An attempt of the step started."""
    COMPLETED = LifecycleEventType.STEP_COMPLETED
    """The step completed."""


@dataclass(frozen=True)
class LifecycleEvent:
    """Something that happened to a workflow, delivered after it was saved."""

    type: LifecycleEventType
    workflow_id: str
    workflow_definition_id: str
    version: int
    reference: str | None
    time: datetime
    step_id: int | None = None
    execution_pointer_id: str | None = None
    error: ExecutionError | None = None


LifecycleCallback = Callable[[LifecycleEvent], None]

_ENTERED: dict[WorkflowStatus, LifecycleEventType] = {
    WorkflowStatus.COMPLETE: LifecycleEventType.WORKFLOW_COMPLETED,
    WorkflowStatus.TERMINATED: LifecycleEventType.WORKFLOW_TERMINATED,
    WorkflowStatus.SUSPENDED: LifecycleEventType.WORKFLOW_SUSPENDED,
    WorkflowStatus.RUNNABLE: LifecycleEventType.WORKFLOW_RESUMED,
}


class WorkflowMiddleware:
    """Hooks around whole workflows; override what you need. ``before_start`` may change
    ``instance.data`` before the instance is first saved; ``before_publish`` sees an event published
    through ``host.publish_event`` before it is saved; ``after_complete`` runs once the completed (or
    terminated) instance is saved. Exceptions in ``before_start`` or ``before_publish`` stop the call."""

    def before_start(self, instance: WorkflowInstance) -> None:
        pass

    def before_publish(self, event: Event) -> None:
        pass

    def after_complete(self, instance: WorkflowInstance) -> None:
        pass


class Lifecycle:
    """Fans lifecycle events out to subscribers and calls workflow middleware."""

    def __init__(self) -> None:
        self._callbacks: list[LifecycleCallback] = []
        self.middleware: list[WorkflowMiddleware] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: LifecycleCallback) -> None:
        with self._lock:
            self._callbacks = [*self._callbacks, callback]

    def publish(
        self,
        instance: WorkflowInstance,
        kind: LifecycleEventType,
        time: datetime,
        pointer: ExecutionPointer | None = None,
        error: ExecutionError | None = None,
    ) -> None:
        if not self._callbacks:
            return
        event = LifecycleEvent(
            type=kind,
            workflow_id=instance.id,
            workflow_definition_id=instance.workflow_definition_id,
            version=instance.version,
            reference=instance.reference,
            time=time,
            step_id=pointer.step_id if pointer else (error.step_id if error else None),
            execution_pointer_id=pointer.id if pointer else (error.execution_pointer_id if error else None),
            error=error,
        )
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("lifecycle callback %r failed on %s", callback, kind.value)

    def after_save(
        self,
        instance: WorkflowInstance,
        before: WorkflowStatus,
        time: datetime,
        step_events: Sequence[tuple[StepEvent, ExecutionPointer]] = (),
        errors: Sequence[ExecutionError] = (),
    ) -> None:
        """Publish what one save changed, in order: steps, errors, then the workflow's transition."""
        if not self._callbacks and not self.middleware:
            return  # nobody listens: after every save, so not even the loops below
        for kind, pointer in step_events:
            self.publish(instance, kind.value, time, pointer)
        for error in errors:
            self.publish(instance, LifecycleEventType.WORKFLOW_ERROR, time, error=error)
        if instance.status is not before:
            self.publish(instance, _ENTERED[instance.status], time)
            if instance.is_finished:
                for middleware in self.middleware:
                    try:
                        middleware.after_complete(instance)
                    except Exception:
                        logger.exception("workflow middleware %r failed after workflow %s", middleware, instance.id)
