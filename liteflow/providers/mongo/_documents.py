"""The MongoDB documents LiteFlow stores, and the indexes its queries use.

Every document keeps the fields that queries filter or sort on at its top level, with times as
integer microseconds since the Unix epoch (UTC): BSON dates have millisecond precision, so they
would neither compare exactly nor read back exactly. The full model is under ``record``, as
produced by the record functions of :mod:`liteflow.providers.spi`, with its times as ISO-8601
strings (exact, offset kept) and every *user* value (workflow data, step persistence data, event
data, ``for_each`` items, outcomes) as JSON text.

User values are text rather than nested BSON on purpose: LiteFlow's JSON tags objects with a
``"$t"`` key, and MongoDB accepts ``$``-prefixed field names only with restrictions (not before
5.0, not as update or query paths, only through ``$getField`` in aggregations); user dicts may have
keys with dots or NUL characters and integers past 64 bits, which BSON refuses or cannot index.
Everything else (status, pointers with their step ids, event names and keys, ...) is native BSON,
readable and queryable in the shell.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel

from liteflow.providers.spi import (
    Event,
    EventSubscription,
    ExecutionError,
    WorkflowInstance,
    WorkflowStatus,
    error_from_record,
    error_to_record,
    event_to_record,
    instance_to_record,
    read_event,
    read_instance,
    subscription_from_record,
    subscription_to_record,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# User values as JSON text (ASCII-escaped: a lone surrogate in a str still encodes).
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads
_POINTER_VALUES = ("persistence_data", "event_data", "context_item", "outcome")

RUNNABLE = "runnable"


def micros(value: datetime) -> int:
    """Microseconds since the epoch, UTC. A naive datetime is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def optional_micros(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICROSECOND


# -- instances -------------------------------------------------------------------------------


def instance_fields(instance: WorkflowInstance, revision: int) -> dict[str, Any]:
    """The instance's top-level fields (indexed copies and the record) at ``revision``.
    Raises SerializationError naming the field that cannot be stored."""
    record = instance_to_record(instance)
    record["revision"] = revision
    record["data"] = _dumps(record["data"])
    for pointer in record["execution_pointers"]:
        for name in _POINTER_VALUES:
            pointer[name] = _dumps(pointer[name])
    return {
        "definition_id": instance.workflow_definition_id,
        "version": instance.version,
        "reference": instance.reference,
        "status": instance.status.value,
        "next_execution": optional_micros(instance.next_execution),
        "create_time": micros(instance.create_time),
        "complete_time": optional_micros(instance.complete_time),
        "revision": revision,
        "record": record,
    }


def _instance_record(stored: dict[str, Any]) -> dict[str, Any]:
    record = dict(stored)
    record["data"] = _loads(record["data"])
    pointers = []
    for stored_pointer in record["execution_pointers"]:
        pointer = dict(stored_pointer)
        for name in _POINTER_VALUES:
            pointer[name] = _loads(pointer[name])
        pointers.append(pointer)
    record["execution_pointers"] = pointers
    return record


def instance_from_document(document: dict[str, Any]) -> WorkflowInstance:
    """The instance; quarantined (see ``read_instance``) if its record cannot be decoded."""

    def columns() -> WorkflowInstance:
        create_time = _from_micros(document["create_time"])
        assert create_time is not None
        return WorkflowInstance(
            id=document["_id"],
            workflow_definition_id=document["definition_id"],
            version=document["version"],
            reference=document["reference"],
            status=WorkflowStatus(document["status"]),
            next_execution=_from_micros(document["next_execution"]),
            create_time=create_time,
            complete_time=_from_micros(document["complete_time"]),
        )

    instance = read_instance(document["record"], _instance_record, columns)
    instance.revision = document["revision"]  # the top-level field is the truth
    return instance


# -- subscriptions, errors, events --------------------------------------------------------------


def subscription_document(subscription: EventSubscription) -> dict[str, Any]:
    """A subscription without ``_id`` or ``ended`` (the writer adds those)."""
    return {
        "workflow_id": subscription.workflow_id,
        "event_name": subscription.event_name,
        "event_key": subscription.event_key,
        "subscribe_as_of": micros(subscription.subscribe_as_of),
        "record": subscription_to_record(subscription),
    }


def subscription_from_document(document: dict[str, Any]) -> EventSubscription:
    return subscription_from_record(document["record"])


def error_document(error: ExecutionError, revision: int, position: int) -> dict[str, Any]:
    """An error without ``_id``. ``(revision, position)`` orders one instance's errors: every error
    is written by a save, and saves of one instance have increasing revisions."""
    return {
        "workflow_id": error.workflow_id,
        "revision": revision,
        "position": position,
        "record": error_to_record(error),
    }


def error_from_document(document: dict[str, Any]) -> ExecutionError:
    return error_from_record(document["record"])


def event_document(event: Event) -> dict[str, Any]:
    """An event without ``_id``. ``is_processed`` at the top level is the truth; the record keeps
    the value the event was created with."""
    record = event_to_record(event)
    record["event_data"] = _dumps(record["event_data"])
    return {
        "event_name": event.event_name,
        "event_key": event.event_key,
        "event_time": micros(event.event_time),
        "is_processed": event.is_processed,
        "record": record,
    }


def _event_record(stored: dict[str, Any]) -> dict[str, Any]:
    record = dict(stored)
    record["event_data"] = _loads(record["event_data"])
    return record


def event_from_document(document: dict[str, Any]) -> Event:
    """The event; quarantined (see ``read_event``) if its record cannot be decoded."""
    event_time = _from_micros(document["event_time"])
    assert event_time is not None
    columns = Event(document["event_name"], document["event_key"], id=document["_id"], event_time=event_time)
    event = read_event(document["record"], _event_record, lambda: columns)
    event.is_processed = bool(document["is_processed"])
    return event


# -- indexes ----------------------------------------------------------------------------------

# Ties on a sort key are broken by _id, so every listing has one deterministic order.
WORKFLOW_INDEXES = [
    # The poller's query: only runnable instances are in it.
    IndexModel([("next_execution", ASCENDING)], name="runnable", partialFilterExpression={"status": RUNNABLE}),
    # query_instances: each common filter leads one index, then the page order.
    IndexModel([("definition_id", ASCENDING), ("create_time", ASCENDING), ("_id", ASCENDING)], name="definition"),
    IndexModel([("reference", ASCENDING), ("create_time", ASCENDING), ("_id", ASCENDING)], name="reference"),
    IndexModel([("status", ASCENDING), ("create_time", ASCENDING), ("_id", ASCENDING)], name="status"),
    IndexModel([("create_time", ASCENDING), ("_id", ASCENDING)], name="created"),
    # purge: finished instances by completion time. Not partial: MongoDB uses a partial index only
    # for queries that imply its filter, and a range on complete_time implies no $type or $exists.
    IndexModel([("complete_time", ASCENDING), ("status", ASCENDING)], name="finished"),
    # Recovery: the few instances whose outbox is not yet materialized.
    IndexModel(
        [("pending_outbox", ASCENDING)], name="pending_outbox", partialFilterExpression={"pending_outbox": True}
    ),
]
SUBSCRIPTION_INDEXES = [
    IndexModel(
        [("event_name", ASCENDING), ("event_key", ASCENDING), ("subscribe_as_of", ASCENDING)],
        name="open_by_event",
        partialFilterExpression={"ended": False},
    ),
    IndexModel([("workflow_id", ASCENDING)], name="workflow"),
]
ERROR_INDEXES = [
    IndexModel([("workflow_id", ASCENDING), ("revision", ASCENDING), ("position", ASCENDING)], name="workflow"),
]
EVENT_INDEXES = [
    IndexModel(
        [("event_name", ASCENDING), ("event_key", ASCENDING), ("event_time", ASCENDING), ("_id", ASCENDING)],
        name="by_key",
    ),
    IndexModel(
        [("event_time", ASCENDING), ("_id", ASCENDING)],
        name="unprocessed",
        partialFilterExpression={"is_processed": False},
    ),
    IndexModel([("event_time", ASCENDING)], name="processed", partialFilterExpression={"is_processed": True}),
]
