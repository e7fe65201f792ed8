"""Mapping between the model dataclasses and plain JSON records, shared by every provider.

A record holds only JSON types: times as ISO-8601 strings, user values (workflow data, step
persistence data, event data, for_each items) through :mod:`._serialization`. Providers keep the
fields they query (status, next execution, event name and key, ...) in indexed columns of their own
and the rest in the record.

Quarantine: a stored instance or event that cannot be decoded is read back through
:func:`read_instance` / :func:`read_event` as a placeholder built from the provider's columns, its
data an :class:`UnreadableData` holding the stored record as it was. Saving the placeholder writes a
*quarantine record*: the usual fields, no user data and no pointers, plus ``"quarantine"`` (why it
could not be read) and ``"raw"`` (the original record, untouched). Reading that back never decodes
the original again, so a quarantined item costs nothing and breaks nothing later.
"""

from __future__ import annotations

import json
import json.encoder
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

from ._models import (
    CompactedHistory,
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    StepTally,
    UnreadableData,
    WorkflowInstance,
    WorkflowStatus,
)
from ._serialization import from_jsonable, to_jsonable

logger = logging.getLogger("liteflow")

QUARANTINE = "quarantine"
"""The key that marks a quarantine record (its value says why the original could not be read)."""


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder that JSONEncoder(separators=(",", ":")).encode builds at each call, built once:
# ASCII-escaped, compact, NaN allowed, no circular check (the JSON types that to_jsonable and the
# record functions make hold no cycle). None without the C accelerator (another interpreter).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_chunks: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
)
_encode = json.JSONEncoder(separators=(",", ":")).encode


def json_text(value: Any) -> str:
    """``value`` (JSON types only: a record, or what ``to_jsonable`` made) as compact JSON text,
    as the stores write it. Runs for every record saved, hence the encoder built once."""
    if _chunks is None:
        return _encode(value)
    return "".join(_chunks(value, 0))


_NOTHING = object()  # never the data of an instance


class _Lent(threading.local):
    """Workflow data the payload check already turned into JSON types (and measured as JSON text),
    for this thread's next save."""

    data: Any = _NOTHING
    jsonable: Any = None
    text: str | None = None


_lent = _Lent()


def lend_jsonable_data(data: Any, jsonable: Any, text: str | None = None) -> None:
    """Let the next :func:`instance_to_record` (or :func:`instance_record_text`) in this thread of
    an instance whose data is ``data`` (this very object) use ``jsonable``, its JSON types made by
    the payload check just before the save, and ``text``, those as :func:`json_text` (the check's
    measure): the data is encoded once per save, not twice. Used once; :func:`forget_lent_data` ends it."""
    lent = _lent
    lent.data, lent.jsonable, lent.text = data, jsonable, text


def forget_lent_data() -> None:
    lent = _lent
    lent.data, lent.jsonable, lent.text = _NOTHING, None, None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_fromisoformat = datetime.fromisoformat
# The enums by value, read with one C call where calling the enum is two Python calls (every load);
# the enum is still called for anything else, for its error.
_POINTER_STATUSES: dict[str, PointerStatus] = {status.value: status for status in PointerStatus}
_WORKFLOW_STATUSES: dict[str, WorkflowStatus] = {status.value: status for status in WorkflowStatus}


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _value(value: Any, where: int | str, name: str) -> Any:
    path = f"execution_pointers[{where}]" if type(where) is int else where  # made only for a value
    return None if value is None else to_jsonable(value, f"{path}.{name}")


_recent: tuple[datetime | None, str | None] = (None, None)
"""The time :func:`pointer_to_record` formatted last, and its text: the instance's next execution
or end saved with it is most often that very datetime (the pass's ``now``). Rebound, never changed
in place, so another thread reads a matching pair."""


def pointer_to_record(pointer: ExecutionPointer, where: int | str) -> dict[str, Any]:
    """The pointer as JSON types; ``where`` names it in an error: its index in the instance's
    pointers, or a path."""
    # Runs for every pointer at every save: the None tests and ``_value_`` (the enum's plain
    # attribute, where ``.value`` is a property) are written out rather than called.
    global _recent
    sleep_until, start_time, end_time = pointer.sleep_until, pointer.start_time, pointer.end_time
    persistence_data, event_data = pointer.persistence_data, pointer.event_data
    context_item, outcome = pointer.context_item, pointer.outcome
    # A finished pointer is written at every later save: its times' text is kept on it (see
    # ExecutionPointer._iso), used only while the very same datetime objects are in its fields.
    iso = pointer._iso
    if start_time is None:
        start = None
    elif start_time is iso[0]:
        start = iso[1]
    else:
        start = start_time.isoformat()
        _recent = (start_time, start)
    if end_time is None:
        end = None
    elif end_time is iso[2]:
        end = iso[3]
    elif end_time is start_time:  # a step that ended in the pass it started in
        end = start
    else:
        end = end_time.isoformat()
        _recent = (end_time, end)
    if start is not iso[1] or end is not iso[3]:
        pointer._iso = (start_time, start, end_time, end)  # type: ignore[misc]  # see ExecutionPointer._iso
    return {
        "id": pointer.id,
        "step_id": pointer.step_id,
        "active": pointer.active,
        "status": pointer.status._value_,
        "sleep_until": None if sleep_until is None else sleep_until.isoformat(),
        "persistence_data": None if persistence_data is None else _value(persistence_data, where, "persistence_data"),
        "start_time": start,
        "end_time": end,
        "event_name": pointer.event_name,
        "event_key": pointer.event_key,
        "event_published": pointer.event_published,
        "event_id": pointer.event_id,
        "event_data": None if event_data is None else _value(event_data, where, "event_data"),
        "context_item": None if context_item is None else _value(context_item, where, "context_item"),
        "predecessor_id": pointer.predecessor_id,
        "outcome": None if outcome is None else _value(outcome, where, "outcome"),
        "retry_count": pointer.retry_count,
        "retries_before_resume": pointer.retries_before_resume,
        "children": pointer.children[:],  # copies (see instance_to_record), without a call
        "scope": pointer.scope[:],
    }


def pointer_from_record(record: dict[str, Any]) -> ExecutionPointer:
    # Runs for every pointer at every load: the None tests written out, as in pointer_to_record.
    sleep_until, start_time, end_time = record["sleep_until"], record["start_time"], record["end_time"]
    persistence_data, event_data = record["persistence_data"], record["event_data"]
    context_item, outcome = record["context_item"], record["outcome"]
    status = record["status"]
    return ExecutionPointer(
        id=record["id"],
        step_id=record["step_id"],
        active=record["active"],
        status=(type(status) is str and _POINTER_STATUSES.get(status)) or PointerStatus(status),
        sleep_until=None if sleep_until is None else _fromisoformat(sleep_until),
        persistence_data=None if persistence_data is None else from_jsonable(persistence_data),
        start_time=None if start_time is None else _fromisoformat(start_time),
        end_time=None if end_time is None else _fromisoformat(end_time),
        event_name=record["event_name"],
        event_key=record["event_key"],
        event_published=record["event_published"],
        event_id=record["event_id"],
        event_data=None if event_data is None else from_jsonable(event_data),
        context_item=None if context_item is None else from_jsonable(context_item),
        predecessor_id=record["predecessor_id"],
        outcome=None if outcome is None else from_jsonable(outcome),
        retry_count=record["retry_count"],
        retries_before_resume=record.get("retries_before_resume", 0),
        children=list(record["children"]),
        scope=list(record["scope"]),
    )


def compacted_to_record(history: CompactedHistory) -> dict[str, Any]:
    """The compacted history of an instance's loops as JSON types (step ids as string keys)."""
    return {
        "pointers": history.pointers,
        "steps": {
            str(step_id): {
                "runs": tally.runs,
                "statuses": dict(tally.statuses),
                "failed_attempts": tally.failed_attempts,
                "first_start": _time(tally.first_start),
                "last_end": _time(tally.last_end),
            }
            for step_id, tally in history.steps.items()
        },
        "consumed_events": list(history.consumed_events),
    }


def compacted_from_record(record: dict[str, Any]) -> CompactedHistory:
    """The compacted history back from what :func:`compacted_to_record` made."""
    return CompactedHistory(
        pointers=record["pointers"],
        steps={
            int(step_id): StepTally(
                runs=tally["runs"],
                statuses=dict(tally["statuses"]),
                failed_attempts=tally["failed_attempts"],
                first_start=_parse_time(tally["first_start"]),
                last_end=_parse_time(tally["last_end"]),
            )
            for step_id, tally in record["steps"].items()
        },
        consumed_events=list(record["consumed_events"]),
    )


def instance_to_record(instance: WorkflowInstance) -> dict[str, Any]:
    """The whole instance as JSON types. Raises SerializationError naming the failing field.

    Every container in the record is new (the pointers' ``children`` and ``scope`` copied, the trace
    context too), so the memory store can keep the record itself: nothing the caller does to the
    instance afterwards reaches it."""
    return _instance_record(instance, True)


def _instance_record(instance: WorkflowInstance, with_data: bool) -> dict[str, Any]:
    quarantined = type(instance.data) is UnreadableData
    data_json: Any = None
    if with_data and not quarantined:  # the data, then the pointers: a save's errors come in that order
        data, lent = instance.data, _lent  # _data written out: every save
        if lent.data is data:
            data_json = lent.jsonable
            lent.data, lent.jsonable, lent.text = _NOTHING, None, None
        else:
            data_json = to_jsonable(data, "data")
    # The pointers before the instance's own fields (map over an index, not a comprehension: one
    # call less per save), so that the time formatted last for them is at hand (see _recent).
    pointers = [] if quarantined else list(map(pointer_to_record, instance.execution_pointers, count()))
    next_execution, complete_time, create_time = instance.next_execution, instance.complete_time, instance.create_time
    recent = _recent
    iso = instance._iso  # the create time's text, kept as the pointers' times are (see pointer_to_record)
    if create_time is iso[0]:
        created = iso[1]
    elif create_time is recent[0]:
        created = recent[1]
    else:
        created = create_time.isoformat()
        instance._iso = (create_time, created)  # type: ignore[misc]  # see WorkflowInstance._iso
    record = {
        "id": instance.id,
        "workflow_definition_id": instance.workflow_definition_id,
        "version": instance.version,
        "reference": instance.reference,
        "status": instance.status._value_,
        "next_execution": (
            None if next_execution is None else recent[1] if next_execution is recent[0] else next_execution.isoformat()
        ),
        "create_time": created,
        "complete_time": (
            None if complete_time is None else recent[1] if complete_time is recent[0] else complete_time.isoformat()
        ),
        "revision": instance.revision,
        "parent_workflow_id": instance.parent_workflow_id,
    }
    if quarantined:
        record.update(data=None, execution_pointers=[], raw=instance.data.raw)
        record[QUARANTINE] = instance.data.reason
        return record
    if with_data:
        record["data"] = data_json
    record["execution_pointers"] = pointers
    if instance.trace_context:  # absent rather than null: most instances carry none
        record["trace_context"] = dict(instance.trace_context)
    if instance.priority:  # absent when 0, as nearly always
        record["priority"] = instance.priority
    if instance.queued:
        record["queued"] = True
    if instance.compacted is not None:  # absent until a loop folds a round: older records lack it
        record["compacted"] = compacted_to_record(instance.compacted)
    return record


def instance_record_text(instance: WorkflowInstance, revision: int | None = None) -> str:
    """``json_text(instance_to_record(instance))`` (its ``"revision"`` set to ``revision`` if
    given), the text a store writes. When the save's payload check has lent the data's text (see
    :func:`lend_jsonable_data`), the rest of the record is encoded and that text spliced in as its
    last field: the data is encoded to JSON once per save, for the limit and the record both."""
    lent = _lent
    text = lent.text
    if text is not None and lent.data is instance.data and type(instance.data) is not UnreadableData:
        lent.data, lent.jsonable, lent.text = _NOTHING, None, None
        record = _instance_record(instance, False)
        if revision is not None:
            record["revision"] = revision
        head = json_text(record)  # a JSON object with at least "id": ends with "}"
        return f'{head[:-1]},"data":{text}}}'
    record = _instance_record(instance, True)
    if revision is not None:
        record["revision"] = revision
    return json_text(record)


def instance_from_record(record: dict[str, Any]) -> WorkflowInstance:
    # Runs for every load: _parse_time written out.
    created, next_execution, complete_time = record["create_time"], record["next_execution"], record["complete_time"]
    assert created is not None
    quarantined = QUARANTINE in record
    trace_context = record.get("trace_context")
    status = record["status"]
    return WorkflowInstance(
        id=record["id"],
        workflow_definition_id=record["workflow_definition_id"],
        version=record["version"],
        reference=record["reference"],
        status=(type(status) is str and _WORKFLOW_STATUSES.get(status)) or WorkflowStatus(status),
        next_execution=None if next_execution is None else _fromisoformat(next_execution),
        create_time=_fromisoformat(created),
        complete_time=None if complete_time is None else _fromisoformat(complete_time),
        revision=record["revision"],
        parent_workflow_id=record.get("parent_workflow_id"),
        data=UnreadableData(record[QUARANTINE], record.get("raw")) if quarantined else from_jsonable(record["data"]),
        execution_pointers=[] if quarantined else list(map(pointer_from_record, record["execution_pointers"])),
        trace_context=None if trace_context is None else dict(trace_context),
        priority=0 if quarantined else record.get("priority", 0),
        queued=bool(record.get("queued", False)),
        compacted=None if quarantined or "compacted" not in record else compacted_from_record(record["compacted"]),
    )


def event_to_record(event: Event) -> dict[str, Any]:
    """The event as JSON types; a quarantined event keeps its original record. Raises SerializationError."""
    record: dict[str, Any] = {
        "id": event.id,
        "event_name": event.event_name,
        "event_key": event.event_key,
        "event_data": None,
        "event_time": _time(event.event_time),
        "is_processed": event.is_processed,
    }
    if isinstance(event.event_data, UnreadableData):
        record[QUARANTINE], record["raw"] = event.event_data.reason, event.event_data.raw
    else:
        record["event_data"] = to_jsonable(event.event_data, "event_data")
    if event.trace_context:
        record["trace_context"] = event.trace_context
    return record


def event_from_record(record: dict[str, Any]) -> Event:
    event_time = _parse_time(record["event_time"])
    assert event_time is not None
    if QUARANTINE in record:
        data: Any = UnreadableData(record[QUARANTINE], record.get("raw"))
    else:
        data = from_jsonable(record["event_data"])
    return Event(
        id=record["id"],
        event_name=record["event_name"],
        event_key=record["event_key"],
        event_data=data,
        event_time=event_time,
        is_processed=record["is_processed"],
        trace_context=record.get("trace_context"),
    )


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:1000]  # a parse error may quote much of the record


def read_instance(
    raw: Any, decode: Callable[[Any], dict[str, Any]], columns: Callable[[], WorkflowInstance]
) -> WorkflowInstance:
    """The instance stored as ``raw`` (``decode`` turns it into a record). One that cannot be decoded
    comes back quarantined rather than raising, so one bad row never breaks a query or a worker: the
    instance ``columns()`` builds from the provider's indexed fields, with an UnreadableData holding
    ``raw`` as its data and no pointers. The host records the quarantine when it meets one."""
    record: Any = None
    try:
        record = decode(raw)
        return instance_from_record(record)
    except Exception as error:  # whatever is wrong with the stored bytes, the reason names it
        instance = columns()
        parent = record.get("parent_workflow_id") if isinstance(record, dict) else None
        instance.parent_workflow_id = parent if isinstance(parent, str) else None
        instance.data = UnreadableData(_reason(error), raw)
        instance.execution_pointers = []
        logger.debug("workflow %s cannot be read: %s", instance.id, instance.data.reason)
        return instance


def read_event(raw: Any, decode: Callable[[Any], dict[str, Any]], columns: Callable[[], Event]) -> Event:
    """The event stored as ``raw``; like :func:`read_instance`, one that cannot be decoded comes back
    quarantined (``columns()`` built from the indexed fields, an UnreadableData as its data)."""
    try:
        return event_from_record(decode(raw))
    except Exception as error:  # see read_instance
        event = columns()
        event.event_data = UnreadableData(_reason(error), raw)
        logger.debug("event %s cannot be read: %s", event.id, event.event_data.reason)
        return event


def subscription_to_record(subscription: EventSubscription) -> dict[str, Any]:
    """The subscription as JSON types (its time as an ISO-8601 string)."""
    return {
        "id": subscription.id,
        "workflow_id": subscription.workflow_id,
        "step_id": subscription.step_id,
        "execution_pointer_id": subscription.execution_pointer_id,
        "event_name": subscription.event_name,
        "event_key": subscription.event_key,
        "subscribe_as_of": _time(subscription.subscribe_as_of),
    }


def subscription_from_record(record: dict[str, Any]) -> EventSubscription:
    """The subscription back from what :func:`subscription_to_record` made."""
    as_of = _parse_time(record["subscribe_as_of"])
    assert as_of is not None
    return EventSubscription(
        id=record["id"],
        workflow_id=record["workflow_id"],
        step_id=record["step_id"],
        execution_pointer_id=record["execution_pointer_id"],
        event_name=record["event_name"],
        event_key=record["event_key"],
        subscribe_as_of=as_of,
    )


def error_to_record(error: ExecutionError) -> dict[str, Any]:
    """The execution error as JSON types (its time as an ISO-8601 string)."""
    return {
        "id": error.id,
        "workflow_id": error.workflow_id,
        "execution_pointer_id": error.execution_pointer_id,
        "step_id": error.step_id,
        "message": error.message,
        "error_type": error.error_type,
        "traceback": error.traceback,
        "attempt": error.attempt,
        "error_time": _time(error.error_time),
    }


def error_from_record(record: dict[str, Any]) -> ExecutionError:
    """The execution error back from what :func:`error_to_record` made."""
    error_time = _parse_time(record["error_time"])
    assert error_time is not None
    return ExecutionError(**{**record, "error_time": error_time})


Column = Callable[[Any], Any]


@dataclass(frozen=True)
class SaveRows:
    """What one ``persist_workflow`` writes to a SQL store, as rows, built (and so serialized)
    before any transaction starts: the SQLite and PostgreSQL providers share these columns."""

    update: tuple[Any, ...]
    """definition_id, version, reference, status, next_execution, complete_time, record; id, revision"""
    subscriptions: list[tuple[Any, ...]]
    """id, workflow_id, event_name, event_key, subscribe_as_of, record"""
    ended: list[str]
    errors: list[tuple[Any, ...]]
    """id, workflow_id, record"""
    events: list[tuple[Any, ...]]
    """id, event_name, event_key, event_time, is_processed, record"""

    @property
    def only_update(self) -> bool:
        return not (self.subscriptions or self.ended or self.errors or self.events)


def event_row(event: Event, *, time: Column, dumps: Callable[[Any], str], flag: Column) -> tuple[Any, ...]:
    """One row of a SQL events table: id, event_name, event_key, event_time, is_processed, record;
    ``time`` and ``flag`` turn the datetime and the boolean into column values."""
    record = dumps(event_to_record(event))
    return (event.id, event.event_name, event.event_key, time(event.event_time), flag(event.is_processed), record)


def save_rows(
    instance: WorkflowInstance,
    subscriptions: Sequence[EventSubscription],
    terminated_subscriptions: Sequence[str],
    errors: Sequence[ExecutionError],
    events: Sequence[Event],
    *,
    time: Column,
    dumps: Callable[[Any], str],
    flag: Column,
) -> SaveRows:
    """The rows of a save; ``time`` and ``flag`` turn datetimes and booleans into column values,
    ``dumps`` the other records into text (the instance's is :func:`instance_record_text`'s)."""
    record = instance_record_text(instance, instance.revision + 1)  # the data encoded once (see there)
    # Every save: the enum's plain attribute rather than its .value property, and no comprehension
    # (a call of its own) over the lists that are empty between most steps.
    return SaveRows(
        update=(
            instance.workflow_definition_id,
            instance.version,
            instance.reference,
            instance.status._value_,
            None if instance.next_execution is None else time(instance.next_execution),
            None if instance.complete_time is None else time(instance.complete_time),
            record,
            instance.id,
            instance.revision,
        ),
        subscriptions=[
            (s.id, s.workflow_id, s.event_name, s.event_key, time(s.subscribe_as_of), dumps(subscription_to_record(s)))
            for s in subscriptions
        ]
        if subscriptions
        else [],
        ended=list(terminated_subscriptions),
        errors=[(e.id, e.workflow_id, dumps(error_to_record(e))) for e in errors] if errors else [],
        events=[event_row(event, time=time, dumps=dumps, flag=flag) for event in events] if events else [],
    )
