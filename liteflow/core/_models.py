"""The persisted state of workflows: instances, execution pointers, events, subscriptions, errors.

These are plain dataclasses. Providers store them; the executor changes them; nothing here does I/O.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(timezone.utc)


_ids = random.Random()  # our own generator: a user's random.seed() must not repeat our ids
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)  # a forked child must not repeat its parent's


# A random 128-bit id as 32 hex digits (what uuid4().hex gives, at a fraction of the cost).
# Not from os.urandom: that call lets go of the GIL, and a worker thread then waits up to a switch
# interval to get it back from the others (a sixth of the memory benchmark's samples). The ids name
# records; they are not secrets (the dashboard's tokens come from ``secrets``).
# Made of C callables only, with no Python frame per id (several ids per workflow): next() of a map
# that formats, as 32 hex digits, the 128 random bits an endless iterator draws. A call runs in C
# from start to end without letting go of the GIL, so threads sharing it never interleave in one.
new_id: Callable[[], str] = functools.partial(
    next, map("{:032x}".format, iter(functools.partial(_ids.getrandbits, 128), None))
)


class WorkflowStatus(str, Enum):
    """The status of a workflow instance: runnable, suspended, complete or terminated."""

    RUNNABLE = "runnable"
    SUSPENDED = "suspended"
    COMPLETE = "complete"
    TERMINATED = "terminated"


class PointerStatus(str, Enum):
    """The status of an execution pointer (one activation of one step)."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING_FOR_EVENT = "waiting_for_event"
    FAILED = "failed"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"
    QUEUED = "queued"
    """Created but waiting for its predecessor to end (sequential compensation)."""


@dataclass(frozen=True)
class UnreadableData:
    """Stands in for the data of a stored instance or event that could not be decoded (malformed
    JSON, a class the decoder refuses, nesting too deep to load): such an instance or event is
    *quarantined*. ``raw`` is the stored record exactly as read, kept so nothing is lost when the
    quarantined item is saved again (suspended, terminated)."""

    reason: str
    raw: Any = field(repr=False)


@dataclass
class ExecutionPointer:
    """One activation of one step of a workflow instance."""

    step_id: int
    id: str = field(default_factory=new_id)
    active: bool = True
    status: PointerStatus = PointerStatus.PENDING
    sleep_until: datetime | None = None
    persistence_data: Any = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    event_name: str | None = None
    event_key: str | None = None
    event_published: bool = False
    event_id: str | None = None
    event_data: Any = None
    context_item: Any = None
    predecessor_id: str | None = None
    outcome: Any = None
    retry_count: int = 0
    """Failed attempts so far; with the pointer id it keys side effects (``idempotency_key``)."""
    retries_before_resume: int = 0
    """``retry_count`` when the workflow was last resumed: a retry policy counts from there."""
    children: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)
    """Ids of the enclosing container pointers, innermost first."""

    _iso: ClassVar[tuple[Any, ...]] = (None, None, None, None)
    # Not a field: (start_time, its isoformat, end_time, its isoformat) as last written by
    # ``_records.pointer_to_record``, which every save calls for every pointer. Each string is used
    # only while its datetime (immutable) is the very object in the field, so it is never stale.


@dataclass
class StepTally:
    """What the compacted pointers of one step did (see :class:`CompactedHistory`)."""

    runs: int = 0
    """Pointers of this step folded away."""
    statuses: dict[str, int] = field(default_factory=dict)
    """How they ended: pointer status value -> count."""
    failed_attempts: int = 0
    """Their failed attempts (retry counts) summed: the errors themselves stay in the store."""
    first_start: datetime | None = None
    last_end: datetime | None = None


@dataclass
class CompactedHistory:
    """The finished rounds of loops (``while_``, ``for_each``) folded out of an instance's pointers,
    so that a long loop keeps a bounded record (see ``_compaction``)."""

    pointers: int = 0
    """Pointers folded away in all."""
    steps: dict[int, StepTally] = field(default_factory=dict)
    """Step id -> what its folded pointers did."""
    consumed_events: list[str] = field(default_factory=list)
    """Ids of the events the folded pointers received: a wait in a later round must not get one
    of them again."""


@dataclass
class WorkflowInstance:
    """A running (or finished) workflow: its data and the pointers that say where it is."""

    RUNNABLE: ClassVar[WorkflowStatus] = WorkflowStatus.RUNNABLE
    SUSPENDED: ClassVar[WorkflowStatus] = WorkflowStatus.SUSPENDED
    COMPLETE: ClassVar[WorkflowStatus] = WorkflowStatus.COMPLETE
    TERMINATED: ClassVar[WorkflowStatus] = WorkflowStatus.TERMINATED

    workflow_definition_id: str
    version: int
    data: Any = None
    id: str = field(default_factory=new_id)
    reference: str | None = None
    status: WorkflowStatus = WorkflowStatus.RUNNABLE
    next_execution: datetime | None = None
    create_time: datetime = field(default_factory=utcnow)
    complete_time: datetime | None = None
    execution_pointers: list[ExecutionPointer] = field(default_factory=list)
    parent_workflow_id: str | None = None
    """Set on a sub-workflow: the instance that started it and waits for it."""
    revision: int = 0
    """Incremented by every save; a save based on an older revision fails (optimistic concurrency)."""

    _iso: ClassVar[tuple[Any, ...]] = (None, None)
    # Not a field: (create_time, its isoformat) as last written by ``_records.instance_to_record``
    # (see ExecutionPointer._iso).
    trace_context: dict[str, str] | None = None
    """The W3C trace context of the call that started it (set by :mod:`liteflow.tracing`), so its
    steps join the caller's trace on whichever node runs them."""
    priority: int = 0
    """Queue priority of its turns (higher first) while workers are saturated; set at start."""
    queued: bool = False
    """True while it waits for a slot of its definition's :class:`Concurrency` limit (it runs no
    step meanwhile, and holds no worker)."""
    compacted: CompactedHistory | None = None
    """The finished loop rounds folded out of ``execution_pointers``; None until a loop folds one."""

    def pointer(self, pointer_id: str) -> ExecutionPointer | None:
        for pointer in self.execution_pointers:
            if pointer.id == pointer_id:
                return pointer
        return None

    def consumed_events(self) -> set[str]:
        """Ids of the events this instance's steps have received, compacted ones included."""
        consumed = {pointer.event_id for pointer in self.execution_pointers if pointer.event_id}
        if self.compacted is not None:
            consumed.update(self.compacted.consumed_events)
        return consumed

    @property
    def is_finished(self) -> bool:
        return self.status in (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED)

    @property
    def quarantined(self) -> bool:
        """True when the stored instance could not be decoded: ``data`` is an
        :class:`UnreadableData` and no execution pointers were loaded."""
        return isinstance(self.data, UnreadableData)


@dataclass
class Event:
    """An external event published through the host."""

    event_name: str
    event_key: str
    event_data: Any = None
    id: str = field(default_factory=new_id)
    event_time: datetime = field(default_factory=utcnow)
    is_processed: bool = False
    trace_context: dict[str, str] | None = None
    """The W3C trace context of the ``publish_event`` call (set by :mod:`liteflow.tracing`)."""

    @property
    def quarantined(self) -> bool:
        """True when the stored event could not be decoded: ``event_data`` is an
        :class:`UnreadableData`. Such an event is never delivered."""
        return isinstance(self.event_data, UnreadableData)


@dataclass
class EventSubscription:
    """A pointer waiting for an event. Events published at or after ``subscribe_as_of`` match."""

    workflow_id: str
    step_id: int
    execution_pointer_id: str
    event_name: str
    event_key: str
    subscribe_as_of: datetime
    id: str = field(default_factory=new_id)


@dataclass
class ExecutionError:
    """A step that raised: kept on the instance's record for ``host.get_workflow_errors``."""

    workflow_id: str
    execution_pointer_id: str
    step_id: int
    message: str
    error_type: str = ""
    traceback: str = ""
    attempt: int = 1
    error_time: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)
