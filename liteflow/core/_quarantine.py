"""Quarantine: what the host does with a stored instance or event it cannot decode.

Providers never raise on such a record: they return a placeholder whose data is an
:class:`UnreadableData` (see :mod:`._records`). Retrying it would fail the same way forever, so the
host, the first time it meets one:

* suspends a runnable instance and records an :class:`ExecutionError` saying why, in one save (the
  original record is kept inside the quarantine record). It is never run again; it can be
  terminated and purged, not resumed.
* marks an event processed, its quarantine record kept, so later events with the same name and key
  are delivered. A quarantined event is never delivered to a workflow.

Each is logged once, at ERROR, when it is quarantined.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ._models import Event, ExecutionError, UnreadableData, WorkflowInstance, WorkflowStatus
from ._providers import PersistenceProvider

logger = logging.getLogger("liteflow")

ERROR_TYPE = "liteflow.core.SerializationError"


def _reason(data: object) -> str:
    return data.reason if isinstance(data, UnreadableData) else "unknown"


def needs_quarantine(instance: WorkflowInstance) -> bool:
    """True for an unreadable instance the store does not yet know to be quarantined."""
    return instance.quarantined and instance.status is WorkflowStatus.RUNNABLE


def quarantine(instance: WorkflowInstance, now: datetime) -> ExecutionError:
    """Suspend an unreadable instance (in memory) and return the error to save with it."""
    reason = _reason(instance.data)
    logger.error(
        "workflow %s quarantined: its stored data cannot be read (%s); it is suspended and can be"
        " terminated or purged, not resumed",
        instance.id,
        reason,
    )
    instance.status, instance.next_execution = WorkflowStatus.SUSPENDED, None
    return ExecutionError(
        workflow_id=instance.id,
        execution_pointer_id="",
        step_id=-1,
        message=f"workflow quarantined: its stored data cannot be read: {reason}",
        error_type=ERROR_TYPE,
        error_time=now,
    )


def set_aside(persistence: PersistenceProvider, event: Event) -> None:
    """Mark an unreadable event processed (its quarantine record stored in place of the original
    record, which it keeps), so that it is neither retried nor blocks later events."""
    logger.error(
        "event %s (%r, %r) quarantined: its stored data cannot be read (%s); it is set aside, never delivered",
        event.id,
        event.event_name,
        event.event_key,
        _reason(event.event_data),
    )
    event.is_processed = True
    persistence.create_event(event)
