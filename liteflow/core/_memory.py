"""In-process providers: the defaults for one node, demos and tests.

The memory store keeps a workflow instance that is due to run as its record (the dict of JSON
types that a database provider would encode and store), other instances and events as JSON text;
callers never share objects with it (see :class:`MemoryPersistenceProvider`).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ._errors import ConcurrencyError, EventNotFoundError, WorkflowNotFoundError
from ._models import Event, EventSubscription, ExecutionError, UnreadableData, WorkflowInstance, WorkflowStatus
from ._providers import (
    ActivityCount,
    ActivityCounter,
    InstanceQuery,
    LockProvider,
    PersistenceProvider,
    QueueProvider,
    QueueType,
)
from ._records import (
    QUARANTINE,
    _instance_record,
    event_to_record,
    instance_record_text,
    json_text,
    read_event,
    read_instance,
)

_dumps = json_text  # compact, as the SQL stores write it


def _record(instance: WorkflowInstance, revision: int) -> dict[str, Any] | str:
    """What the store keeps of ``instance`` (see MemoryPersistenceProvider): the record while it is
    runnable with a next execution, text otherwise (the data's text spliced in, as the stores do)."""
    if instance.status is WorkflowStatus.RUNNABLE and instance.next_execution is not None:
        record = _instance_record(instance, True)  # instance_to_record, one call less
        record["revision"] = revision
        return record
    return instance_record_text(instance, revision)


def _as_record(stored: dict[str, Any]) -> dict[str, Any]:
    return stored


class _Meta(NamedTuple):
    """The fields of a stored instance that purge and queries filter on."""

    status: WorkflowStatus
    complete_time: datetime | None
    definition_id: str
    reference: str | None
    create_time: datetime
    version: int
    next_execution: datetime | None


def _matches(meta: _Meta, query: InstanceQuery) -> bool:
    return (
        (query.status is None or meta.status == query.status)
        and (query.workflow_definition_id is None or meta.definition_id == query.workflow_definition_id)
        and (query.reference is None or meta.reference == query.reference)
        and (query.created_from is None or meta.create_time >= query.created_from)
        and (query.created_to is None or meta.create_time < query.created_to)
    )


class MemoryPersistenceProvider(PersistenceProvider):
    """The default store: everything in this process's memory. Lost when the process ends.

    An instance that is runnable with a next execution (it runs again soon, most likely) is kept as
    its record, the dict :func:`instance_to_record` makes, not as JSON text: encoding it at every
    save and decoding it at every load was a third of a workflow's CPU here. Any other (finished,
    suspended, waiting for an event) is kept as JSON text, as a database holds it: it may stay for
    long, and as text it takes half the memory (1.2 KB against 2.5 KB for a small workflow) and
    gives the garbage collector nothing to scan.
    Isolation holds as with text, because nothing shares a container with a stored record: the
    record is built fresh at every save (every list and dict in it new: the data through
    ``to_jsonable``, the pointers' lists copied), the store never changes it, and a load builds
    fresh objects from it (``from_jsonable`` and the pointers' lists copy again). Data that a real
    store could not hold still fails: ``to_jsonable`` refuses what JSON cannot hold, and the payload
    check (on by default) encodes the data with the stores' encoder before the save, and the last
    save of every workflow encodes the whole record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, dict[str, Any] | str] = {}  # the record (or text: see above)
        self._revisions: dict[str, int] = {}
        self._meta: dict[str, _Meta] = {}
        self._due: dict[str, datetime] = {}
        self._subscriptions: dict[str, EventSubscription] = {}
        # The by-key tables hold no empty entries: a key goes when its last item does.
        self._subscriptions_by_key: defaultdict[tuple[str, str], dict[str, EventSubscription]] = defaultdict(dict)
        self._events: dict[str, str] = {}
        self._event_times: dict[str, datetime] = {}
        self._event_keys: dict[str, tuple[str, str]] = {}
        self._events_by_key: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        self._unprocessed: dict[str, None] = {}  # insertion-ordered set
        self._errors: defaultdict[str, list[ExecutionError]] = defaultdict(list)

    def _store(self, instance: WorkflowInstance, record: dict[str, Any] | str) -> None:
        self._instances[instance.id] = record
        # tuple.__new__ rather than _Meta(...), whose __new__ is a Python function: every save.
        self._meta[instance.id] = tuple.__new__(
            _Meta,
            (
                instance.status,
                instance.complete_time,
                instance.workflow_definition_id,
                instance.reference,
                instance.create_time,
                instance.version,
                instance.next_execution,
            ),
        )
        if instance.status is WorkflowStatus.RUNNABLE and instance.next_execution is not None:
            self._due[instance.id] = instance.next_execution
        else:
            self._due.pop(instance.id, None)

    def create_workflow(self, instance: WorkflowInstance) -> None:
        record = _record(instance, instance.revision)
        with self._lock:
            if instance.id in self._instances:
                raise ConcurrencyError(f"workflow {instance.id} already exists", workflow_id=instance.id)
            self._revisions[instance.id] = instance.revision
            self._store(instance, record)

    def persist_workflow(
        self,
        instance: WorkflowInstance,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        events: Sequence[Event] = (),
    ) -> None:
        revision = instance.revision + 1
        record: dict[str, Any] | str
        if instance.status is WorkflowStatus.RUNNABLE and instance.next_execution is not None:
            record = _instance_record(instance, True)  # _record written out: every save
            record["revision"] = revision
        else:
            record = instance_record_text(instance, revision)
        event_texts = [(event, _dumps(event_to_record(event))) for event in events] if events else ()
        with self._lock:
            stored = self._revisions.get(instance.id)
            if stored is None:
                raise WorkflowNotFoundError(f"no workflow instance with id {instance.id}", workflow_id=instance.id)
            if stored != instance.revision:
                raise ConcurrencyError(
                    f"workflow {instance.id} was saved by someone else (revision {stored}, "
                    f"this copy is {instance.revision})",
                    workflow_id=instance.id,
                )
            self._revisions[instance.id] = revision
            self._store(instance, record)
            for subscription in subscriptions:
                self._subscriptions[subscription.id] = replace(subscription)
                key = (subscription.event_name, subscription.event_key)
                self._subscriptions_by_key[key][subscription.id] = self._subscriptions[subscription.id]
            for subscription_id in terminated_subscriptions:
                self._drop_subscription(subscription_id)
            if errors:
                self._errors[instance.id].extend(replace(error) for error in errors)
            for event, event_text in event_texts:
                self._store_event(event, event_text)
        instance.revision = revision

    def _drop_subscription(self, subscription_id: str) -> None:
        ended = self._subscriptions.pop(subscription_id, None)
        if ended is not None:
            key = (ended.event_name, ended.event_key)
            by_key = self._subscriptions_by_key[key]
            by_key.pop(subscription_id, None)
            if not by_key:
                del self._subscriptions_by_key[key]

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        # No lock, as before: meta and revision only matter if the record cannot be decoded.
        stored, meta = self._instances.get(workflow_id), self._meta.get(workflow_id)
        if stored is None or meta is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        return self._instance(workflow_id, stored, meta, self._revisions.get(workflow_id, 0))

    @staticmethod
    def _instance(workflow_id: str, stored: dict[str, Any] | str, meta: _Meta, revision: int) -> WorkflowInstance:
        def columns() -> WorkflowInstance:  # what is known without decoding the record
            return WorkflowInstance(
                id=workflow_id,
                workflow_definition_id=meta.definition_id,
                version=meta.version,
                reference=meta.reference,
                status=meta.status,
                next_execution=meta.next_execution,
                create_time=meta.create_time,
                complete_time=meta.complete_time,
                revision=revision,
            )

        if type(stored) is str:
            return read_instance(stored, json.loads, columns)
        instance = read_instance(stored, _as_record, columns)
        if type(instance.data) is UnreadableData and QUARANTINE not in stored:
            # It failed to decode: its raw as a database would hold it, never the stored dict.
            instance.data = UnreadableData(instance.data.reason, _dumps(stored))
        return instance

    def get_runnable_instances(self, as_of: datetime) -> list[str]:
        with self._lock:
            return [workflow_id for workflow_id, due in self._due.items() if due <= as_of]

    def query_instances(self, query: InstanceQuery) -> list[WorkflowInstance]:
        with self._lock:
            found = sorted(
                ((meta.create_time, i) for i, meta in self._meta.items() if _matches(meta, query)),
                reverse=query.newest_first,
            )
            page = [
                (i, self._instances[i], self._meta[i], self._revisions[i])
                for _, i in found[query.offset : query.offset + query.limit]
            ]
        return [self._instance(*stored) for stored in page]

    def count_instances(self, query: InstanceQuery) -> int:
        with self._lock:
            return sum(1 for meta in self._meta.values() if _matches(meta, query))

    def workflow_activity(self, start: datetime, end: datetime, period: timedelta) -> list[ActivityCount]:
        counter = ActivityCounter(start, end, period)
        with self._lock:
            for meta in self._meta.values():
                counter.add(meta.create_time, meta.complete_time, meta.status)
        return counter.counts()

    def get_subscriptions(self, event_name: str, event_key: str, as_of: datetime) -> list[EventSubscription]:
        with self._lock:
            found = self._subscriptions_by_key.get((event_name, event_key), {})
            return [replace(s) for s in found.values() if s.subscribe_as_of <= as_of]

    def create_event(self, event: Event) -> None:
        text = _dumps(event_to_record(event))
        with self._lock:
            self._store_event(event, text)

    def _store_event(self, event: Event, text: str) -> None:
        """Store or replace an event; called with the lock held."""
        if event.id in self._events:
            self._unlink_event(event.id)
        self._events[event.id] = text
        self._event_times[event.id] = event.event_time
        key = self._event_keys[event.id] = (event.event_name, event.event_key)
        ids = self._events_by_key[key]
        ids.append(event.id)
        if len(ids) > 1 and self._event_times[ids[-2]] > event.event_time:
            ids.sort(key=self._event_times.__getitem__)
        if not event.is_processed:
            self._unprocessed[event.id] = None

    def _unlink_event(self, event_id: str) -> None:
        """Remove an event from every table but ``_events``; called with the lock held."""
        del self._event_times[event_id]
        self._unprocessed.pop(event_id, None)
        key = self._event_keys.pop(event_id)
        ids = self._events_by_key[key]
        ids.remove(event_id)
        if not ids:
            del self._events_by_key[key]

    def _load_event(self, event_id: str) -> Event:
        text = self._events.get(event_id)
        if text is None:
            raise EventNotFoundError(f"no event with id {event_id}")
        name, key = self._event_keys[event_id]
        time = self._event_times[event_id]
        event = read_event(text, json.loads, lambda: Event(name, key, None, id=event_id, event_time=time))
        event.is_processed = event_id not in self._unprocessed
        return event

    def get_event(self, event_id: str) -> Event:
        with self._lock:
            return self._load_event(event_id)

    def recent_events(self, limit: int) -> list[Event]:
        with self._lock:
            newest = sorted(self._event_times.items(), key=lambda item: item[1], reverse=True)[:limit]
            return [self._load_event(event_id) for event_id, _ in newest]

    def get_events(self, event_name: str, event_key: str, as_of: datetime) -> list[Event]:
        with self._lock:
            ids = self._events_by_key.get((event_name, event_key), [])
            return [self._load_event(i) for i in ids if self._event_times[i] >= as_of]

    def get_runnable_events(self, as_of: datetime) -> list[str]:
        with self._lock:
            # Oldest first by event time: events may be created, or marked unprocessed again, out of time order.
            due = [i for i in self._unprocessed if self._event_times[i] <= as_of]
            return sorted(due, key=self._event_times.__getitem__)

    def mark_event_processed(self, event_id: str) -> None:
        with self._lock:
            if event_id not in self._events:
                raise EventNotFoundError(f"no event with id {event_id}")
            self._unprocessed.pop(event_id, None)

    def mark_event_unprocessed(self, event_id: str) -> None:
        with self._lock:
            if event_id not in self._events:
                raise EventNotFoundError(f"no event with id {event_id}")
            self._unprocessed[event_id] = None

    def get_errors(self, workflow_id: str) -> list[ExecutionError]:
        with self._lock:
            return [replace(error) for error in self._errors.get(workflow_id, [])]

    def purge(self, *, statuses: Sequence[WorkflowStatus], older_than: datetime) -> int:
        wanted = set(statuses)
        with self._lock:
            doomed = {
                workflow_id
                for workflow_id, meta in self._meta.items()
                if meta.status in wanted and meta.complete_time is not None and meta.complete_time < older_than
            }
            for workflow_id in doomed:
                for table in (self._instances, self._revisions, self._meta, self._due, self._errors):
                    table.pop(workflow_id, None)
            for subscription in [s for s in self._subscriptions.values() if s.workflow_id in doomed]:
                self._drop_subscription(subscription.id)
            for event_id in [i for i, t in self._event_times.items() if t < older_than and i not in self._unprocessed]:
                del self._events[event_id]
                self._unlink_event(event_id)
            return len(doomed)


class SingleNodeQueueProvider(QueueProvider):
    """Queues in this process: higher priority first, then first in, first out. An id already
    waiting is not queued twice; queued again with a higher priority, it moves up."""

    def __init__(self) -> None:
        lock = threading.Lock()
        # One condition per queue on a shared lock: an item wakes one consumer of its own queue.
        self._ready = {queue: threading.Condition(lock) for queue in QueueType}
        self._lock = lock
        # Per queue, one FIFO per priority that has items waiting (nearly always just 0).
        self._queues: dict[QueueType, dict[int, deque[str]]] = {queue: {} for queue in QueueType}
        self._waiting: dict[QueueType, dict[str, int]] = {queue: {} for queue in QueueType}  # id -> priority
        # Consumers blocked in dequeue, per queue: an enqueue notifies only when one is (a busy
        # worker finds the item without being woken; notify() itself is two Python calls).
        self._sleepers: dict[QueueType, int] = dict.fromkeys(QueueType, 0)
        self._closed = False

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        with self._lock:
            waiting = self._waiting[queue]
            levels = self._queues[queue]
            if item_id in waiting:
                if waiting[item_id] >= priority:
                    return
                old = levels[waiting[item_id]]  # queued again with a higher priority: move it up
                old.remove(item_id)
                if not old:
                    del levels[waiting[item_id]]
            waiting[item_id] = priority
            items = levels.get(priority)
            if items is None:
                items = levels[priority] = deque()
            items.append(item_id)
            if self._sleepers[queue]:
                self._ready[queue].notify()

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        with self._lock:
            levels = self._queues[queue]
            if not levels and not self._closed:
                self._sleepers[queue] += 1
                try:
                    self._ready[queue].wait_for(lambda: bool(levels) or self._closed, timeout)
                finally:
                    self._sleepers[queue] -= 1
            if not levels:
                return None
            priority = max(levels) if len(levels) > 1 else next(iter(levels))
            items = levels[priority]
            item_id = items.popleft()
            if not items:
                del levels[priority]
            del self._waiting[queue][item_id]
            return item_id

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for ready in self._ready.values():
                ready.notify_all()


class LocalLockProvider(LockProvider):
    """Locks within this process.

    Without a mutex: taking a lock is one ``dict.setdefault`` and releasing one ``dict.pop``, each
    atomic, so two threads racing for a resource cannot both win, and a thread that loses the GIL
    here holds up no other thread (see ``_gil`` on lock convoys)."""

    def __init__(self) -> None:
        self._held: dict[str, object] = {}

    def acquire(self, resource: str) -> bool:
        mine = object()
        return self._held.setdefault(resource, mine) is mine

    def release(self, resource: str) -> None:
        self._held.pop(resource, None)

    def close(self) -> None:
        self._held.clear()
