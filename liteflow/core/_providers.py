"""The three provider contracts: persistence, queue and lock.

The host talks to storage and to other nodes only through these. Each is small on purpose; the
contract test suites in :mod:`liteflow.testing` say exactly what an implementation must do.

Failures: besides the errors each method names, any method may raise
:class:`ProviderUnavailableError` when the backend cannot be reached, does not answer within the
provider's timeouts, or cannot take the call right now (disk full, read-only, locked, shutting
down). A read, or a write refused before it reached the backend, did not happen; a write whose
answer was lost (sent, then the connection broke or timed out) may have been applied, which the
host tolerates (queues deliver at least once, saves check revisions). The same provider object
works again once the backend is back, without being recreated. Any other failure
of the backend is a :class:`ProviderError`. Either way the driver's exception is the
``__cause__``; raw driver exceptions never escape. Background threads a provider owns (renewals,
listeners, I/O) survive every failure. The fault suites in :mod:`liteflow.testing` check all this
through a :class:`~liteflow.testing.FaultProxy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from ._errors import InvalidArgumentError, InvalidOperationError
from ._models import Event, EventSubscription, ExecutionError, WorkflowInstance, WorkflowStatus

MAX_QUERY_LIMIT = 10_000


@dataclass(frozen=True)
class InstanceQuery:
    """What :meth:`PersistenceProvider.query_instances` returns: instances matching every field
    given (None matches all), created in ``[created_from, created_to)``, one page of them, oldest
    first, or newest first with ``newest_first``."""

    status: WorkflowStatus | None = None
    workflow_definition_id: str | None = None
    reference: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    limit: int = 100
    offset: int = 0
    newest_first: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_QUERY_LIMIT:
            raise InvalidArgumentError(f"limit must be between 1 and {MAX_QUERY_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise InvalidArgumentError(f"offset must be 0 or more, got {self.offset}")


@dataclass(frozen=True)
class ActivityCount:
    """What :meth:`PersistenceProvider.workflow_activity` returns for one period: instances created
    in ``[start, start + period)``, and instances that ended then, as complete or as terminated."""

    start: datetime
    started: int = 0
    completed: int = 0
    terminated: int = 0


class PersistenceProvider(ABC):
    """Stores workflow instances, event subscriptions, events and step errors.

    Every query below is meant to be answered from an index in a real database: runnable
    instances by next execution time, subscriptions by (event name, event key), events by
    (event name, event key, time), unprocessed events by time, and :meth:`query_instances` by
    (definition, creation time), reference, (status, creation time) or creation time.

    A stored instance or event that cannot be decoded never makes a read raise: it comes back
    quarantined (its data an :class:`UnreadableData`, built with ``read_instance``/``read_event``
    from ``_records`` and the provider's own columns), and saving it again keeps the original record.
    """

    @abstractmethod
    def create_workflow(self, instance: WorkflowInstance) -> None:
        """Store a new instance (its ``id`` is set by the caller). Its data must be serializable:
        otherwise :class:`SerializationError` is raised and nothing is stored. If an instance with
        that id exists, :class:`ConcurrencyError` is raised and the stored one is left unchanged."""

    def create_workflow_queued(self, instance: WorkflowInstance, queue: QueueProvider) -> bool:
        """Optional: store a new instance as :meth:`create_workflow` does and, in the same
        transaction, queue its id on ``queue`` (``QueueType.WORKFLOW``, ``instance.priority``), so
        that a start is one commit instead of two: for a store whose queue lives in the same
        database. Both happen or neither does (a :class:`ConcurrencyError` queues nothing).

        Return False, having done nothing, when this store cannot do it for ``queue`` (the
        default): the host then calls :meth:`create_workflow` and queues the id itself."""
        return False

    @abstractmethod
    def persist_workflow(
        self,
        instance: WorkflowInstance,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        events: Sequence[Event] = (),
    ) -> None:
        """Save an instance together with new subscriptions, ended subscriptions, errors and new
        events, all or nothing. The stored revision must equal ``instance.revision``, else
        :class:`ConcurrencyError` is raised and nothing is written; on success ``instance.revision``
        is incremented. Any data that cannot be serialized raises :class:`SerializationError` and
        nothing is written either.

        ``events`` are stored as by :meth:`create_event` in the same write (a transactional outbox):
        an event that must follow from this save, such as a sub-workflow's completion, is never lost
        to a crash between two writes."""

    @abstractmethod
    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        """Load an instance, or raise :class:`WorkflowNotFoundError`."""

    def acquire_and_load(self, lock: LockProvider, workflow_id: str) -> WorkflowInstance | Literal[False] | None:
        """Optional: take ``lock`` on ``workflow_id`` as ``lock.acquire`` does and, once it is
        taken, load the instance as :meth:`get_workflow_instance` does, in one round trip: for a
        store whose lock lives in the same database. Returns the instance (the lock is held), or
        False if someone else holds the lock (nothing loaded). If the lock was taken but the
        instance cannot be loaded, the lock is given back before the error is raised.

        Return None, having done nothing, when this store cannot do it for ``lock`` (the
        default): the host then calls ``lock.acquire`` and :meth:`get_workflow_instance` itself."""
        return None

    @abstractmethod
    def query_instances(self, query: InstanceQuery) -> list[WorkflowInstance]:
        """Instances matching ``query``, ordered by (create time, id), descending if
        ``query.newest_first``, ``query.offset`` of them skipped and at most ``query.limit`` returned."""

    def count_instances(self, query: InstanceQuery) -> int:
        """How many instances match ``query`` (its ``limit`` and ``offset`` are ignored).

        This default reads every match page by page; database providers answer from an index.
        """
        total, offset = 0, 0
        while True:
            page = self.query_instances(replace(query, limit=MAX_QUERY_LIMIT, offset=offset))
            total += len(page)
            if len(page) < MAX_QUERY_LIMIT:
                return total
            offset += MAX_QUERY_LIMIT

    def workflow_activity(self, start: datetime, end: datetime, period: timedelta) -> list[ActivityCount]:
        """Instances started, completed and terminated in each ``period`` from ``start`` up to
        ``end``, oldest period first (for the dashboard's chart).

        This default reads every instance; database providers answer from their time indexes.
        """
        counter = ActivityCounter(start, end, period)
        offset = 0
        while True:
            page = self.query_instances(InstanceQuery(limit=MAX_QUERY_LIMIT, offset=offset))
            for instance in page:
                counter.add(instance.create_time, instance.complete_time, instance.status)
            if len(page) < MAX_QUERY_LIMIT:
                return counter.counts()
            offset += MAX_QUERY_LIMIT

    @abstractmethod
    def get_runnable_instances(self, as_of: datetime) -> list[str]:
        """Ids of runnable instances whose next execution time is at or before ``as_of``."""

    @abstractmethod
    def get_subscriptions(self, event_name: str, event_key: str, as_of: datetime) -> list[EventSubscription]:
        """Open subscriptions for (name, key) that began at or before ``as_of``."""

    @abstractmethod
    def create_event(self, event: Event) -> None:
        """Store a published event. Its data must be serializable. An event with the same id is
        replaced."""

    def create_event_queued(self, event: Event, queue: QueueProvider) -> bool:
        """Optional: store a published event as :meth:`create_event` does and, in the same
        transaction, queue its id on ``queue`` (``QueueType.EVENT``), so that a publish is one commit
        instead of two: for a store whose queue lives in the same database. Both rows are written or
        neither is; a call that raises after its commit (the queue's notification failed, the
        answer was lost) may have written both, as any write whose answer did not arrive.

        Return False, having done nothing, when this store cannot do it for ``queue`` (the
        default): the host then calls :meth:`create_event` and queues the id itself."""
        return False

    @abstractmethod
    def get_event(self, event_id: str) -> Event:
        """Load an event, or raise :class:`EventNotFoundError`."""

    @abstractmethod
    def get_events(self, event_name: str, event_key: str, as_of: datetime) -> list[Event]:
        """Events for (name, key) published at or after ``as_of``, oldest first, processed or not."""

    def recent_events(self, limit: int) -> list[Event]:
        """The ``limit`` most recently published events, processed or not, newest first (for the
        dashboard). This default raises :class:`InvalidOperationError`: the store cannot tell."""
        raise InvalidOperationError(f"{type(self).__name__} cannot list recent events")

    @abstractmethod
    def get_runnable_events(self, as_of: datetime) -> list[str]:
        """Ids of unprocessed events published at or before ``as_of``, oldest first."""

    @abstractmethod
    def mark_event_processed(self, event_id: str) -> None:
        """Take an event out of the runnable ones, or raise :class:`EventNotFoundError`."""

    @abstractmethod
    def mark_event_unprocessed(self, event_id: str) -> None:
        """Make an event runnable again, or raise :class:`EventNotFoundError`."""

    @abstractmethod
    def get_errors(self, workflow_id: str) -> list[ExecutionError]:
        """Errors recorded for an instance, oldest first."""

    @abstractmethod
    def purge(self, *, statuses: Sequence[WorkflowStatus], older_than: datetime) -> int:
        """Delete instances in ``statuses`` completed before ``older_than`` (with their errors and
        subscriptions) and processed events published before it. Returns the instances removed."""

    def close(self) -> None:
        """Release connections. The default does nothing."""

    def default_lock(self) -> LockProvider | None:
        """The lock a host on this store uses when it is given none (the host owns and closes it),
        or None for a lock within one process. A store that several processes may share without a
        lock service of their own (a SQLite file) returns a lock that lives in the store."""
        return None


class ActivityCounter:
    """Sorts start and end times into the periods of :meth:`PersistenceProvider.workflow_activity`."""

    def __init__(self, start: datetime, end: datetime, period: timedelta) -> None:
        if period <= timedelta(0):
            raise InvalidArgumentError(f"period must be positive, got {period}")
        if end < start:
            raise InvalidArgumentError(f"end ({end}) is before start ({start})")
        self.start, self.end, self.period = start, end, period
        self.size = max(1, -(-(end - start) // period))  # periods, the last one possibly partial
        self.rows = [[0, 0, 0] for _ in range(self.size)]

    def index(self, moment: datetime) -> int | None:
        """The period ``moment`` falls in, or None outside ``[start, end)``."""
        if moment < self.start or moment >= self.end:
            return None
        return min(self.size - 1, (moment - self.start) // self.period)

    def add(self, created: datetime, completed: datetime | None, status: WorkflowStatus) -> None:
        self.count(self.index(created), 0, 1)
        if completed is not None and status in (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED):
            self.count(self.index(completed), 1 if status is WorkflowStatus.COMPLETE else 2, 1)

    def count(self, index: int | None, column: int, number: int) -> None:
        if index is not None and 0 <= index < self.size:
            self.rows[index][column] += number

    def counts(self) -> list[ActivityCount]:
        return [ActivityCount(self.start + i * self.period, *row) for i, row in enumerate(self.rows)]


class QueueType(str, Enum):
    """The two queues a host reads: workflow ids to run, and event ids to deliver."""

    WORKFLOW = "workflow"
    EVENT = "event"


class QueueProvider(ABC):
    """Hands ids of workflows and events that need work to the host's consumers.

    Delivery is at least once: an item taken by ``dequeue`` and never acknowledged (its consumer
    died) may be handed out again. Queuing an id that is already waiting may be a no-op.

    Priorities: an item queued with a higher ``priority`` comes out before waiting items of lower
    priority (first in, first out within one priority). This is best-effort where a backend
    cannot order by it exactly (see each provider); a queue that ignores it is still correct, only
    unordered. The host passes ``priority`` only when it is not 0, so a queue written without the
    argument keeps working for workflows started without one.
    """

    @abstractmethod
    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        """Queue an id. If it is already waiting, a queue that de-duplicates keeps one entry, moved
        up to ``priority`` if that is higher (so the default priority of a re-queue by the
        poller never holds back an instance's own)."""

    @abstractmethod
    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        """Take the next id, waiting up to ``timeout`` seconds; None if there is none. While the
        backend is unreachable this raises :class:`ProviderUnavailableError` (it may also return
        None) rather than pretending for long that the queue is empty."""

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        """Say a dequeued item has been handled (after its result is persisted)."""

    def close(self) -> None:
        """Release resources and wake blocked ``dequeue`` calls. The default does nothing."""


class LockProvider(ABC):
    """Mutual exclusion on named resources (workflow and event ids) across all hosts."""

    @abstractmethod
    def acquire(self, resource: str) -> bool:
        """Take the lock without waiting; False if someone else holds it. A backend that cannot
        say raises :class:`ProviderUnavailableError`, never returns False."""

    @abstractmethod
    def release(self, resource: str) -> None:
        """Give back a lock taken by this provider. Releasing a lock not held does nothing."""

    def close(self) -> None:
        """Release every lock and resource. The default does nothing."""
