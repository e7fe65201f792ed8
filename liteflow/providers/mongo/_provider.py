"""A :class:`PersistenceProvider` on MongoDB, with pymongo.

Collections (names behind an optional prefix): ``workflows`` (one document per instance, its
execution pointers inside it), ``subscriptions``, ``events`` and ``execution_errors``. Document
layouts and indexes are in :mod:`._documents`.

Atomicity without transactions
    ``persist_workflow`` must write the instance, its new and ended subscriptions, its errors and
    its events all or nothing. Multi-document transactions need a replica set, so this provider
    does not use them. Instead it keeps a transactional *outbox* inside the instance document:

    1. One conditional single-document update, filtered on ``{_id, revision}``, sets the new
       instance state, increments the revision and ``$push``-es one outbox entry (the new
       subscriptions, ended subscription ids, errors and events of this save) and sets
       ``pending_outbox: true``. MongoDB applies a single-document update atomically, so either
       all of it is stored or none of it: that update is the commit point. A stale revision
       matches nothing and nothing is written (:class:`ConcurrencyError`).
    2. The outbox is then *materialized* into the other collections, and each entry is pulled
       from the outbox once applied; ``pending_outbox`` is unset when the outbox is empty.
    3. A crash (or a lost connection) between 1 and 2 leaves the entry in the outbox. Every query
       that reads those collections (``get_subscriptions``, ``get_event(s)``,
       ``get_runnable_events``, ``get_errors``, the event markers and ``purge``) first
       materializes whatever pending outboxes it finds through a partial index on
       ``pending_outbox``, which is empty in steady state, so a committed save is visible to every
       query as soon as step 1 returned, whichever node asks.

    Materializing is idempotent and order-insensitive, so two nodes may apply the same entry at
    once: new subscriptions, errors and outbox events are inserted only if absent
    (``$setOnInsert`` upserts keyed by id, so a late replay never overwrites a processed event);
    ending a subscription sets ``ended: true`` on it, creating a stub if the subscription has not
    been materialized yet, and nothing sets it back. Ended subscriptions therefore stay as small
    tombstones (out of the subscription index) until their instance is purged.

Concurrency
    The revision in the update's filter is the optimistic concurrency check (a fencing token in
    effect): of several nodes saving the same revision, exactly one matches.

Failures
    A server that cannot be reached, does not answer, is shutting down, stepping down, out of disk
    or busy with a lock makes a call raise :class:`ProviderUnavailableError` (any other driver error
    :class:`ProviderError`), the driver's error as ``__cause__``. A client made from a URL waits at
    most 5 s to select a server (``serverSelectionTimeoutMS``), 5 s to connect
    (``connectTimeoutMS``) and 15 s for an answer (``socketTimeoutMS``) unless the URL or the
    ``client_options`` set those; a client given is used as it is.

Consistency and durability
    The client's read and write concerns apply (pymongo's defaults: acknowledged writes on the
    primary, reads from the primary). On a replica set use ``w=majority`` in the URL so that a
    committed save survives a failover.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import bson
import pymongo
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from liteflow.providers.spi import (
    ActivityCount,
    ActivityCounter,
    ConcurrencyError,
    Event,
    EventNotFoundError,
    EventSubscription,
    ExecutionError,
    InstanceQuery,
    PersistenceProvider,
    ProviderError,
    ProviderUnavailableError,
    SerializationError,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
)

from . import _documents as docs

logger = logging.getLogger("liteflow.providers.mongo")

Document = dict[str, Any]
_BATCH = 1000  # ids per $in in purge
_NOT_STORABLE = (bson.errors.InvalidDocument, bson.errors.InvalidStringData, OverflowError, UnicodeEncodeError)
_TIMEOUTS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000, "socketTimeoutMS": 15000}
"""Defaults for a client made from a URL (pymongo's are 30 s to select a server, 20 s to connect,
and no limit at all on waiting for an answer)."""
# Server error codes meaning "not now" rather than "never": host unreachable or not found, network
# timeout, socket error, exceeded time limit, lock timeout or busy, write conflict, out of disk
# space, shutting down, interrupted at shutdown or by a replica-set change, not primary, stepped down.
_UNAVAILABLE_CODES = frozenset(
    {6, 7, 24, 46, 50, 89, 91, 112, 189, 202, 262, 9001, 10107, 11600, 11602, 13435, 13436, 14031}
)


def unavailable(error: PyMongoError) -> bool:
    """Whether a driver error means the server is unreachable, silent, full, busy or stepping down."""
    if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError) or error.timeout:
        return True
    if error.has_error_label("RetryableWriteError") or error.has_error_label("TransientTransactionError"):
        return True
    return isinstance(error, OperationFailure) and error.code in _UNAVAILABLE_CODES


def _with_timeouts(url: str, client_options: dict[str, Any]) -> dict[str, Any]:
    """``client_options`` plus the default timeouts that neither they nor the URL set."""
    given = {name.lower() for name in client_options}
    given |= {name.lower() for name, _ in parse_qsl(urlsplit(url).query)}
    defaults = {name: value for name, value in _TIMEOUTS.items() if name.lower() not in given}
    return {**defaults, **client_options}


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn driver errors into :class:`ProviderError` (the cause kept) and values BSON cannot hold
    into :class:`SerializationError`."""
    try:
        yield
    except _NOT_STORABLE as error:
        raise SerializationError(f"cannot store {action}: {error}") from error
    except PyMongoError as error:
        if unavailable(error):
            raise ProviderUnavailableError(f"MongoDB is unavailable to {action}: {error}") from error
        raise ProviderError(f"MongoDB failed to {action}: {error}") from error


def _body(document: Document) -> Document:
    return {name: value for name, value in document.items() if name != "_id"}


def _insert_if_absent(document: Document) -> UpdateOne:
    return UpdateOne({"_id": document["_id"]}, {"$setOnInsert": _body(document)}, upsert=True)


class MongoPersistenceProvider(PersistenceProvider):
    """Workflow state in a MongoDB database; see the module docstring for the design.

    ``url_or_client`` is a ``mongodb://`` URL (the provider makes the client and closes it) or a
    ``pymongo.MongoClient`` (left open on ``close``); ``database`` is the database name.
    ``collection_prefix`` is put before every collection name, so several applications can share
    one database. ``client_options`` go to ``MongoClient`` when a URL is given.
    """

    def __init__(
        self,
        url_or_client: str | pymongo.MongoClient[Document],
        database: str = "liteflow",
        *,
        collection_prefix: str = "",
        **client_options: Any,
    ) -> None:
        if isinstance(url_or_client, str):
            options = _with_timeouts(url_or_client, client_options)
            self._client: pymongo.MongoClient[Document] = pymongo.MongoClient(url_or_client, **options)
            self._owns_client = True
        else:
            self._client, self._owns_client = url_or_client, False
        self.database_name = database
        db = self._client[database]
        self._workflows: Collection[Document] = db[f"{collection_prefix}workflows"]
        self._subscriptions: Collection[Document] = db[f"{collection_prefix}subscriptions"]
        self._events: Collection[Document] = db[f"{collection_prefix}events"]
        self._errors: Collection[Document] = db[f"{collection_prefix}execution_errors"]
        try:
            with _translated("create its indexes"):
                self._workflows.create_indexes(docs.WORKFLOW_INDEXES)
                self._subscriptions.create_indexes(docs.SUBSCRIPTION_INDEXES)
                self._errors.create_indexes(docs.ERROR_INDEXES)
                self._events.create_indexes(docs.EVENT_INDEXES)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> MongoPersistenceProvider:
        """``mongodb://host:port/database?options`` (or ``mongodb+srv://``); the database defaults
        to ``liteflow``. Options other than LiteFlow's ``collection_prefix`` go to pymongo."""
        from pymongo.uri_parser import parse_uri

        base, _, query = url.partition("?")
        kept, prefix = [], ""
        for part in filter(None, query.split("&")):
            name, _, value = part.partition("=")
            if name == "collection_prefix":
                prefix = value
            else:
                kept.append(part)
        clean = base + ("?" + "&".join(kept) if kept else "")
        database = parse_uri(clean).get("database") or "liteflow"
        return cls(clean, database, collection_prefix=prefix)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(database={self.database_name!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- workflows -----------------------------------------------------------------------------

    def create_workflow(self, instance: WorkflowInstance) -> None:
        document = {"_id": instance.id, **docs.instance_fields(instance, instance.revision)}
        try:
            with _translated(f"create workflow {instance.id}"):
                self._workflows.insert_one(document)
        except ProviderError as error:
            if isinstance(error.__cause__, DuplicateKeyError):
                raise ConcurrencyError(
                    f"workflow {instance.id} already exists", workflow_id=instance.id
                ) from error.__cause__
            raise

    def persist_workflow(
        self,
        instance: WorkflowInstance,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        events: Sequence[Event] = (),
    ) -> None:
        outbox = self._commit(
            instance,
            subscriptions=subscriptions,
            terminated_subscriptions=terminated_subscriptions,
            errors=errors,
            events=events,
        )
        instance.revision += 1
        if outbox is not None:
            try:
                self._materialize(instance.id, outbox)
            except PyMongoError as error:
                # The save is committed; the outbox stays pending and the next reader applies it.
                logger.warning("workflow %s saved; its outbox is left for recovery: %s", instance.id, error)

    def _commit(
        self,
        instance: WorkflowInstance,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        events: Sequence[Event] = (),
    ) -> list[Document] | None:
        """Step 1 of a save, the commit point: the conditional update of the instance with its
        outbox entry. Returns the instance's pending outbox entries (None if this save had none).
        Does not change ``instance``. Tests call it alone to stand for a crash after the commit."""
        revision = instance.revision
        fields = docs.instance_fields(instance, revision + 1)
        entry: Document = {
            "revision": revision + 1,
            "subscriptions": [{"_id": s.id, **docs.subscription_document(s)} for s in subscriptions],
            "terminated": list(terminated_subscriptions),
            "errors": [{"_id": e.id, **docs.error_document(e, revision + 1, n)} for n, e in enumerate(errors)],
            "events": [{"_id": e.id, **docs.event_document(e)} for e in events],
        }
        has_entry = any(entry[name] for name in ("subscriptions", "terminated", "errors", "events"))
        selector = {"_id": instance.id, "revision": revision}
        with _translated(f"save workflow {instance.id}"):
            if not has_entry:
                # Keep any earlier pending entry: $set never touches the outbox.
                if self._workflows.update_one(selector, {"$set": fields}).matched_count == 0:
                    self._raise_lost_update(instance.id, revision)
                return None
            stored = self._workflows.find_one_and_update(
                selector,
                {"$set": {**fields, "pending_outbox": True}, "$push": {"outbox": entry}},
                projection={"outbox": 1},
                return_document=ReturnDocument.AFTER,
            )
        if stored is None:
            self._raise_lost_update(instance.id, revision)
        outbox: list[Document] = stored.get("outbox", [])
        return outbox

    def _raise_lost_update(self, workflow_id: str, revision: int) -> NoReturn:
        with _translated(f"read workflow {workflow_id}"):
            stored = self._workflows.find_one({"_id": workflow_id}, {"revision": 1})
        if stored is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        raise ConcurrencyError(
            f"workflow {workflow_id} was saved by someone else (revision {stored['revision']}, "
            f"this copy is {revision})",
            workflow_id=workflow_id,
        )

    # -- the outbox ----------------------------------------------------------------------------

    def _materialize(self, workflow_id: str, outbox: list[Document]) -> None:
        """Apply outbox entries to their collections, pull them, and clear the pending flag once
        the outbox is empty. Idempotent; raises the driver's errors."""
        for entry in sorted(outbox, key=lambda e: int(e["revision"])):
            subscription_ops = [
                UpdateOne({"_id": s["_id"]}, {"$setOnInsert": {**_body(s), "ended": False}}, upsert=True)
                for s in entry["subscriptions"]
            ]
            subscription_ops += [
                UpdateOne(
                    {"_id": ended},
                    {"$set": {"ended": True}, "$setOnInsert": {"workflow_id": workflow_id}},
                    upsert=True,
                )
                for ended in entry["terminated"]
            ]
            for collection, ops in (
                (self._subscriptions, subscription_ops),
                (self._errors, [_insert_if_absent(e) for e in entry["errors"]]),
                (self._events, [_insert_if_absent(e) for e in entry["events"]]),
            ):
                if ops:
                    self._bulk_upsert(collection, ops)
            self._workflows.update_one({"_id": workflow_id}, {"$pull": {"outbox": {"revision": entry["revision"]}}})
        self._workflows.update_one(
            {"_id": workflow_id, "pending_outbox": True, "outbox": {"$size": 0}}, {"$unset": {"pending_outbox": ""}}
        )

    @staticmethod
    def _bulk_upsert(collection: Collection[Document], ops: list[UpdateOne]) -> None:
        try:
            collection.bulk_write(ops, ordered=False)
        except BulkWriteError as error:
            # Two upserts of one new id racing: the loser's insert hits the unique _id index. The
            # document now exists, so the replay is a no-op; anything else is a real failure.
            if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
                raise
            collection.bulk_write(ops, ordered=False)

    def _recover(self) -> None:
        """Materialize every pending outbox: the saves of nodes that died between commit and
        materialization (and, harmlessly, those being materialized right now)."""
        with _translated("recover pending outboxes"):
            for stored in self._workflows.find({"pending_outbox": True}, {"outbox": 1}):
                self._materialize(stored["_id"], stored.get("outbox", []))

    # -- reading instances ---------------------------------------------------------------------

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        with _translated(f"read workflow {workflow_id}"):
            stored = self._workflows.find_one({"_id": workflow_id}, {"outbox": 0})
        if stored is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        return docs.instance_from_document(stored)

    def query_instances(self, query: InstanceQuery) -> list[WorkflowInstance]:
        selector = _selector(query)
        direction = DESCENDING if query.newest_first else ASCENDING
        with _translated("query workflows"):
            cursor = (
                self._workflows.find(selector, {"outbox": 0})
                .sort([("create_time", direction), ("_id", direction)])
                .skip(query.offset)
                .limit(query.limit)
            )
            return [docs.instance_from_document(stored) for stored in cursor]

    def count_instances(self, query: InstanceQuery) -> int:
        with _translated("count workflows"):
            return int(self._workflows.count_documents(_selector(query)))

    def workflow_activity(self, start: datetime, end: datetime, period: timedelta) -> list[ActivityCount]:
        counter = ActivityCounter(start, end, period)
        first, last, size = docs.micros(start), docs.micros(end), period // timedelta(microseconds=1)

        def by_period(field: str) -> Document:
            return {"$floor": {"$divide": [{"$subtract": [f"${field}", first]}, size]}}

        # Each pipeline matches a range of the "created" or "finished" index, then counts.
        started = [
            {"$match": {"create_time": {"$gte": first, "$lt": last}}},
            {"$group": {"_id": by_period("create_time"), "n": {"$sum": 1}}},
        ]
        ended = [
            {"$match": {"complete_time": {"$gte": first, "$lt": last}, "status": {"$in": ["complete", "terminated"]}}},
            {"$group": {"_id": {"period": by_period("complete_time"), "status": "$status"}, "n": {"$sum": 1}}},
        ]
        with _translated("count workflow activity"):
            for row in self._workflows.aggregate(started):
                counter.count(int(row["_id"]), 0, int(row["n"]))
            for row in self._workflows.aggregate(ended):
                column = 1 if row["_id"]["status"] == WorkflowStatus.COMPLETE.value else 2
                counter.count(int(row["_id"]["period"]), column, int(row["n"]))
        return counter.counts()

    def get_runnable_instances(self, as_of: datetime) -> list[str]:
        selector = {"status": docs.RUNNABLE, "next_execution": {"$lte": docs.micros(as_of)}}
        with _translated("query runnable workflows"):
            cursor = self._workflows.find(selector, {"_id": 1}).sort("next_execution", ASCENDING)
            return [stored["_id"] for stored in cursor]

    def get_subscriptions(self, event_name: str, event_key: str, as_of: datetime) -> list[EventSubscription]:
        self._recover()
        selector = {
            "event_name": event_name,
            "event_key": event_key,
            "ended": False,
            "subscribe_as_of": {"$lte": docs.micros(as_of)},
        }
        with _translated("query subscriptions"):
            cursor = self._subscriptions.find(selector).sort([("subscribe_as_of", ASCENDING), ("_id", ASCENDING)])
            return [docs.subscription_from_document(stored) for stored in cursor]

    # -- events --------------------------------------------------------------------------------

    def create_event(self, event: Event) -> None:
        document = docs.event_document(event)
        with _translated(f"store event {event.id}"):
            self._events.replace_one({"_id": event.id}, document, upsert=True)

    def get_event(self, event_id: str) -> Event:
        self._recover()
        with _translated(f"read event {event_id}"):
            stored = self._events.find_one({"_id": event_id})
        if stored is None:
            raise EventNotFoundError(f"no event with id {event_id}")
        return docs.event_from_document(stored)

    def get_events(self, event_name: str, event_key: str, as_of: datetime) -> list[Event]:
        self._recover()
        selector = {"event_name": event_name, "event_key": event_key, "event_time": {"$gte": docs.micros(as_of)}}
        with _translated("query events"):
            cursor = self._events.find(selector).sort([("event_time", ASCENDING), ("_id", ASCENDING)])
            return [docs.event_from_document(stored) for stored in cursor]

    def recent_events(self, limit: int) -> list[Event]:
        self._recover()
        found: list[Document] = []
        with _translated("list recent events"):
            for processed in (True, False):  # one partial index on event_time each
                cursor = self._events.find({"is_processed": processed}).sort("event_time", DESCENDING).limit(limit)
                found.extend(cursor)
        found.sort(key=lambda stored: stored["event_time"], reverse=True)
        return [docs.event_from_document(stored) for stored in found[:limit]]

    def get_runnable_events(self, as_of: datetime) -> list[str]:
        self._recover()
        selector = {"is_processed": False, "event_time": {"$lte": docs.micros(as_of)}}
        with _translated("query runnable events"):
            cursor = self._events.find(selector, {"_id": 1}).sort([("event_time", ASCENDING), ("_id", ASCENDING)])
            return [stored["_id"] for stored in cursor]

    def _mark(self, event_id: str, processed: bool) -> None:
        with _translated(f"mark event {event_id}"):
            matched = self._events.update_one({"_id": event_id}, {"$set": {"is_processed": processed}}).matched_count
            if matched == 0:
                self._recover()  # it may still be in an outbox
                matched = self._events.update_one(
                    {"_id": event_id}, {"$set": {"is_processed": processed}}
                ).matched_count
        if matched == 0:
            raise EventNotFoundError(f"no event with id {event_id}")

    def mark_event_processed(self, event_id: str) -> None:
        self._mark(event_id, True)

    def mark_event_unprocessed(self, event_id: str) -> None:
        self._mark(event_id, False)

    # -- errors and housekeeping ---------------------------------------------------------------

    def get_errors(self, workflow_id: str) -> list[ExecutionError]:
        self._recover()
        with _translated(f"read errors of workflow {workflow_id}"):
            cursor = self._errors.find({"workflow_id": workflow_id}).sort(
                [("revision", ASCENDING), ("position", ASCENDING)]
            )
            return [docs.error_from_document(stored) for stored in cursor]

    def purge(self, *, statuses: Sequence[WorkflowStatus], older_than: datetime) -> int:
        # Apply pending outboxes first, so a purged instance's events are not lost with it.
        self._recover()
        cutoff = docs.micros(older_than)
        values = list(dict.fromkeys(WorkflowStatus(status).value for status in statuses))
        removed = 0
        with _translated("purge"):
            if values:
                selector = {"complete_time": {"$lt": cutoff}, "status": {"$in": values}}
                doomed = [stored["_id"] for stored in self._workflows.find(selector, {"_id": 1})]
                for start in range(0, len(doomed), _BATCH):
                    batch = doomed[start : start + _BATCH]
                    self._subscriptions.delete_many({"workflow_id": {"$in": batch}})
                    self._errors.delete_many({"workflow_id": {"$in": batch}})
                    # The status filter again: an instance resumed meanwhile is kept.
                    removed += self._workflows.delete_many({"_id": {"$in": batch}, **selector}).deleted_count
            self._events.delete_many({"is_processed": True, "event_time": {"$lt": cutoff}})
        return removed


def _selector(query: InstanceQuery) -> Document:
    """The filter of :meth:`MongoPersistenceProvider.query_instances` and ``count_instances``."""
    selector: Document = {}
    if query.status is not None:
        selector["status"] = WorkflowStatus(query.status).value
    if query.workflow_definition_id is not None:
        selector["definition_id"] = query.workflow_definition_id
    if query.reference is not None:
        selector["reference"] = query.reference
    created: Document = {}
    if query.created_from is not None:
        created["$gte"] = docs.micros(query.created_from)
    if query.created_to is not None:
        created["$lt"] = docs.micros(query.created_to)
    if created:
        selector["create_time"] = created
    return selector
