"""The contract every :class:`~liteflow.core.PersistenceProvider` must meet, as a pytest suite.

Beyond storing and loading, it pins down: creating an id that exists is a :class:`ConcurrencyError`;
``persist_workflow`` writes the instance, subscriptions, errors and events all or nothing;
``query_instances`` filters, orders by (create time, id) and pages; marking an unknown event raises
:class:`EventNotFoundError`; creating an event again replaces it; a record that cannot be decoded
comes back quarantined instead of raising (:mod:`._quarantine_contract`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from liteflow.core import (
    ConcurrencyError,
    Event,
    EventNotFoundError,
    ExecutionPointer,
    InvalidArgumentError,
    PersistenceProvider,
    SerializationError,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from liteflow.core._models import CompactedHistory, StepTally, new_id
from liteflow.core._providers import InstanceQuery

from ._counting_contract import CountingCases
from ._persistence_data import (
    SECOND,
    T0,
    ContractData,
    _aware,
    make_error,
    make_instance,
    make_pointer,
    make_subscription,
    query_ids,
    rich_data,
    run_threads,
)
from ._quarantine_contract import QuarantineCases


class PersistenceContract(QuarantineCases, CountingCases):
    """Subclass as ``Test...`` and supply a ``persistence`` fixture yielding a provider on an empty
    store; close it after the yield. Every test in the suite then runs against that provider.

    The host calls a provider from several threads at once, so there is no flag to skip the
    concurrency tests; ``concurrency_threads`` (a class attribute) sets how many they use.
    The quarantine tests need ``corrupt_instance`` and ``corrupt_event`` methods that damage a
    stored record in the backend (see :class:`QuarantineCases`); they skip without them.
    """

    concurrency_threads: ClassVar[int] = 8

    @pytest.fixture
    def persistence(self) -> Iterator[PersistenceProvider]:
        raise NotImplementedError(f"{type(self).__name__} must define a `persistence` fixture")

    # ------------------------------------------------------------- instances

    def test_create_and_get_round_trip(self, persistence: PersistenceProvider) -> None:
        pointer = make_pointer()
        instance = make_instance(
            data=rich_data(),
            execution_pointers=[ExecutionPointer(step_id=0), pointer],
            complete_time=T0 + SECOND,
        )
        persistence.create_workflow(instance)
        loaded = persistence.get_workflow_instance(instance.id)
        assert loaded == instance
        assert loaded is not instance
        assert loaded.data["object"] == ContractData("widget", 7, ["a", "b"])
        assert loaded.execution_pointers[1] == pointer

    def test_times_come_back_timezone_aware(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(data=rich_data(), execution_pointers=[make_pointer()], complete_time=T0)
        persistence.create_workflow(instance)
        loaded = persistence.get_workflow_instance(instance.id)
        times = [loaded.create_time, loaded.next_execution, loaded.complete_time, loaded.data["when"]]
        for p in loaded.execution_pointers:
            times += [p.sleep_until, p.start_time, p.end_time, p.event_data["paid_at"]]
        assert all(t is not None and _aware(t) for t in times), times
        assert loaded.data["when"] == rich_data()["when"]
        assert loaded.execution_pointers[0].sleep_until == T0 + 30 * SECOND

    def test_returned_instances_are_independent_copies(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(data={"items": [1, 2]}, execution_pointers=[make_pointer()])
        expected = copy.deepcopy(instance)
        persistence.create_workflow(instance)
        instance.data["items"].append("changed after create")
        instance.execution_pointers[0].scope.append("changed after create")

        loaded = persistence.get_workflow_instance(instance.id)
        loaded.data["items"].append(3)
        loaded.execution_pointers[0].children.append("extra")
        loaded.execution_pointers.append(ExecutionPointer(step_id=9))
        loaded.status = WorkflowStatus.TERMINATED

        assert persistence.get_workflow_instance(instance.id) == expected

    def test_a_compacted_history_round_trips(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(execution_pointers=[make_pointer()])
        persistence.create_workflow(instance)
        tally = StepTally(2, {"complete": 1, "compensated": 1}, 1, T0, T0 + SECOND)
        instance.compacted = CompactedHistory(pointers=2, steps={3: tally}, consumed_events=[new_id()])
        persistence.persist_workflow(instance)
        loaded = persistence.get_workflow_instance(instance.id)
        assert loaded.compacted == instance.compacted
        assert loaded.compacted is not None and _aware(loaded.compacted.steps[3].last_end)

    def test_get_unknown_instance_raises(self, persistence: PersistenceProvider) -> None:
        with pytest.raises(WorkflowNotFoundError):
            persistence.get_workflow_instance(new_id())

    def test_create_with_an_existing_id_raises_and_keeps_the_stored_instance(
        self, persistence: PersistenceProvider
    ) -> None:
        persistence.create_workflow(original := make_instance())
        persistence.persist_workflow(original)
        duplicate = make_instance(
            id=original.id,
            data={"counter": "duplicate"},
            reference="ref-duplicate",
            status=WorkflowStatus.COMPLETE,
            next_execution=None,
            complete_time=T0,
            revision=7,
        )
        with pytest.raises(ConcurrencyError):
            persistence.create_workflow(duplicate)
        assert persistence.get_workflow_instance(original.id) == original
        assert original.id in persistence.get_runnable_instances(T0)
        assert persistence.query_instances(InstanceQuery(reference="ref-duplicate")) == []

    def test_caller_chosen_id_taken_once_under_concurrent_creates(self, persistence: PersistenceProvider) -> None:
        # What makes start_workflow(instance_id=...) idempotent: the store's unique key decides.
        chosen = f"order:{new_id()}"
        outcomes: list[str] = []
        barrier = threading.Barrier(self.concurrency_threads)

        def create(n: int) -> None:
            barrier.wait()
            try:
                persistence.create_workflow(make_instance(id=chosen, data={"creator": n}))
                outcomes.append(f"created-{n}")
            except ConcurrencyError:
                outcomes.append("duplicate")

        threads = [threading.Thread(target=create, args=(n,)) for n in range(self.concurrency_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        winners = [o for o in outcomes if o.startswith("created-")]
        assert len(winners) == 1 and outcomes.count("duplicate") == self.concurrency_threads - 1, outcomes
        assert persistence.get_workflow_instance(chosen).data == {"creator": int(winners[0].split("-")[1])}

    def test_priority_round_trips(self, persistence: PersistenceProvider) -> None:
        for priority in (7, -2, 0):
            instance = make_instance(priority=priority)
            persistence.create_workflow(instance)
            assert persistence.get_workflow_instance(instance.id).priority == priority
            persistence.persist_workflow(instance)
            assert persistence.get_workflow_instance(instance.id).priority == priority

    def test_create_with_unserializable_data_stores_nothing(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(data={"callback": lambda: None})
        with pytest.raises(SerializationError):
            persistence.create_workflow(instance)
        with pytest.raises(WorkflowNotFoundError):
            persistence.get_workflow_instance(instance.id)
        assert instance.id not in persistence.get_runnable_instances(T0 + SECOND)

    # ------------------------------------------------------ persist, revisions

    def test_persist_increments_revision_and_saves_changes(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        assert persistence.get_workflow_instance(instance.id).revision == 0

        instance.data = {"counter": 1}
        instance.execution_pointers.append(make_pointer())
        persistence.persist_workflow(instance)
        assert instance.revision == 1
        assert persistence.get_workflow_instance(instance.id) == instance

        persistence.persist_workflow(instance)
        assert instance.revision == 2
        assert persistence.get_workflow_instance(instance.id).revision == 2

    def test_persist_of_stale_copy_raises_concurrency_error(self, persistence: PersistenceProvider) -> None:
        persistence.create_workflow(original := make_instance())
        first = persistence.get_workflow_instance(original.id)
        second = persistence.get_workflow_instance(original.id)
        first.data = {"counter": "first"}
        second.data = {"counter": "second"}

        persistence.persist_workflow(first)
        with pytest.raises(ConcurrencyError):
            persistence.persist_workflow(second)
        assert second.revision == 0
        stored = persistence.get_workflow_instance(original.id)
        assert stored.data == {"counter": "first"}
        assert stored.revision == 1

    def test_failed_persist_stores_nothing(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        name, key = f"event-{new_id()}", "k"
        instance.data = {"callback": lambda: None}
        with pytest.raises(SerializationError):
            persistence.persist_workflow(
                instance,
                subscriptions=[make_subscription(instance, name, key, T0)],
                errors=[make_error(instance, 1)],
            )
        assert instance.revision == 0
        stored = persistence.get_workflow_instance(instance.id)
        assert stored.revision == 0
        assert stored.data == {"counter": 0}
        assert persistence.get_subscriptions(name, key, T0 + SECOND) == []
        assert persistence.get_errors(instance.id) == []

    # ------------------------------------------------------ persist with events

    def test_events_persisted_with_the_instance_are_stored(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        name = f"event-{new_id()}"
        done = Event(event_name=name, event_key="k", event_data={"result": 1}, event_time=T0 - SECOND)
        later = Event(event_name=name, event_key="k", event_data=ContractData("e", 2, []), event_time=T0)
        instance.data = {"counter": 1}
        persistence.persist_workflow(instance, events=[done, later])

        assert instance.revision == 1
        assert persistence.get_workflow_instance(instance.id) == instance
        assert persistence.get_event(done.id) == done
        assert persistence.get_events(name, "k", T0 - 2 * SECOND) == [done, later]
        mine = {done.id, later.id}
        assert [i for i in persistence.get_runnable_events(T0) if i in mine] == [done.id, later.id]

    def test_events_of_a_stale_persist_are_not_stored(self, persistence: PersistenceProvider) -> None:
        persistence.create_workflow(original := make_instance())
        stale = persistence.get_workflow_instance(original.id)
        persistence.persist_workflow(original)
        event = Event(event_name=f"event-{new_id()}", event_key="k", event_time=T0)
        with pytest.raises(ConcurrencyError):
            persistence.persist_workflow(stale, events=[event])
        with pytest.raises(EventNotFoundError):
            persistence.get_event(event.id)
        assert persistence.get_events(event.event_name, "k", T0 - SECOND) == []
        assert event.id not in persistence.get_runnable_events(T0)

    def test_unserializable_event_data_stores_nothing(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        name = f"event-{new_id()}"
        good = Event(event_name=name, event_key="k", event_time=T0)
        bad = Event(event_name=name, event_key="k", event_data={"callback": lambda: None}, event_time=T0)
        instance.data = {"counter": 1}
        with pytest.raises(SerializationError):
            persistence.persist_workflow(instance, events=[good, bad], errors=[make_error(instance, 1)])
        assert instance.revision == 0
        stored = persistence.get_workflow_instance(instance.id)
        assert (stored.revision, stored.data) == (0, {"counter": 0})
        for event in (good, bad):
            with pytest.raises(EventNotFoundError):
                persistence.get_event(event.id)
        assert persistence.get_events(name, "k", T0 - SECOND) == []
        assert persistence.get_errors(instance.id) == []

    # ---------------------------------------------------------- runnable query

    def test_runnable_instances_are_those_due(self, persistence: PersistenceProvider) -> None:
        due = make_instance(next_execution=T0 - SECOND)
        due_now = make_instance(next_execution=T0)
        future = make_instance(next_execution=T0 + SECOND)
        never = make_instance(next_execution=None)
        others = [
            make_instance(status=status, next_execution=T0 - SECOND, complete_time=T0 - SECOND)
            for status in (WorkflowStatus.SUSPENDED, WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED)
        ]
        for instance in [due, due_now, future, never, *others]:
            persistence.create_workflow(instance)
        mine = {i.id for i in [due, due_now, future, never, *others]}

        found = [i for i in persistence.get_runnable_instances(T0) if i in mine]
        assert sorted(found) == sorted([due.id, due_now.id])
        later = [i for i in persistence.get_runnable_instances(T0 + SECOND) if i in mine]
        assert sorted(later) == sorted([due.id, due_now.id, future.id])

    def test_runnable_instances_follow_persisted_changes(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(next_execution=T0)
        sleeper = make_instance(next_execution=None)
        persistence.create_workflow(instance)
        persistence.create_workflow(sleeper)
        assert instance.id in persistence.get_runnable_instances(T0)

        instance.status = WorkflowStatus.COMPLETE
        instance.complete_time = T0
        persistence.persist_workflow(instance)
        sleeper.next_execution = T0 - SECOND
        persistence.persist_workflow(sleeper)

        runnable = persistence.get_runnable_instances(T0)
        assert instance.id not in runnable
        assert sleeper.id in runnable

    # ------------------------------------------------------------ query instances

    def test_instance_query_validates_paging(self) -> None:
        for bad in (dict(limit=0), dict(limit=10_001), dict(offset=-1)):
            with pytest.raises(InvalidArgumentError):
                InstanceQuery(**bad)  # type: ignore[arg-type]
        assert InstanceQuery(limit=10_000, offset=0).limit == 10_000

    def _query_data(self, persistence: PersistenceProvider) -> dict[str, Any]:
        """Instances a..e over two definitions, three statuses and two references, and a function
        naming those a query finds, in the order found."""
        definition, other = f"query-{new_id()}", f"query-{new_id()}"
        ref_a, ref_c = f"ref-{new_id()}", f"ref-{new_id()}"
        done: dict[str, Any] = dict(status=WorkflowStatus.COMPLETE, next_execution=None, complete_time=T0)
        suspended: dict[str, Any] = dict(status=WorkflowStatus.SUSPENDED, next_execution=None)
        instances = dict(
            a=make_instance(workflow_definition_id=definition, reference=ref_a, create_time=T0),
            b=make_instance(workflow_definition_id=definition, reference=None, create_time=T0 + SECOND, **suspended),
            c=make_instance(workflow_definition_id=definition, reference=ref_c, create_time=T0 + 2 * SECOND, **done),
            d=make_instance(workflow_definition_id=other, reference=ref_a, create_time=T0 + 3 * SECOND),
            e=make_instance(workflow_definition_id=other, reference=None, create_time=T0 - SECOND, **done),
        )
        for instance in instances.values():
            persistence.create_workflow(instance)
        names = {instance.id: name for name, instance in instances.items()}

        def found(**fields: Any) -> list[str]:
            return [names[i] for i in query_ids(persistence, **fields) if i in names]

        return dict(instances, definition=definition, other=other, ref_a=ref_a, ref_c=ref_c, found=found)

    def test_query_by_each_filter(self, persistence: PersistenceProvider) -> None:
        data = self._query_data(persistence)
        found = data["found"]
        by_definition = persistence.query_instances(InstanceQuery(workflow_definition_id=data["definition"]))
        assert by_definition == [data["a"], data["b"], data["c"]]
        assert found(workflow_definition_id=data["other"]) == ["e", "d"]
        assert found(reference=data["ref_a"]) == ["a", "d"]
        assert found(reference=data["ref_c"]) == ["c"]
        assert found(status=WorkflowStatus.RUNNABLE) == ["a", "d"]
        assert found(status=WorkflowStatus.SUSPENDED) == ["b"]
        assert found(status=WorkflowStatus.COMPLETE) == ["e", "c"]
        assert found(status=WorkflowStatus.TERMINATED) == []
        assert found(created_from=T0 + SECOND) == ["b", "c", "d"]
        assert found(created_to=T0 + SECOND) == ["e", "a"]
        assert found() == ["e", "a", "b", "c", "d"]
        assert query_ids(persistence, workflow_definition_id=f"query-{new_id()}") == []
        assert query_ids(persistence, reference=f"ref-{new_id()}") == []

    def test_query_with_combined_filters(self, persistence: PersistenceProvider) -> None:
        data = self._query_data(persistence)
        found, definition, other = data["found"], data["definition"], data["other"]
        assert found(workflow_definition_id=other, status=WorkflowStatus.COMPLETE) == ["e"]
        assert found(workflow_definition_id=definition, reference=data["ref_a"]) == ["a"]
        assert found(workflow_definition_id=definition, status=WorkflowStatus.RUNNABLE) == ["a"]
        assert found(status=WorkflowStatus.RUNNABLE, reference=data["ref_a"], created_from=T0 + SECOND) == ["d"]
        assert found(workflow_definition_id=definition, created_from=T0 + SECOND, created_to=T0 + 3 * SECOND) == [
            "b",
            "c",
        ]
        assert found(status=WorkflowStatus.COMPLETE, created_to=T0) == ["e"]
        assert found(workflow_definition_id=other, reference=data["ref_c"]) == []

    def test_query_time_range_is_inclusive_from_exclusive_to(self, persistence: PersistenceProvider) -> None:
        definition = f"query-{new_id()}"
        micro = timedelta(microseconds=1)
        before, at, after = (
            make_instance(workflow_definition_id=definition, create_time=T0 + n * micro) for n in (-1, 0, 1)
        )
        for instance in (after, at, before):
            persistence.create_workflow(instance)

        def ids(**fields: Any) -> list[str]:
            return query_ids(persistence, workflow_definition_id=definition, **fields)

        assert ids(created_from=T0) == [at.id, after.id]
        assert ids(created_to=T0) == [before.id]
        assert ids(created_from=T0, created_to=T0 + micro) == [at.id]
        assert ids(created_from=T0, created_to=T0) == []
        # The same instants in another time zone select the same instances.
        plus_two = timezone(timedelta(hours=2))
        assert ids(created_from=T0.astimezone(plus_two), created_to=(T0 + micro).astimezone(plus_two)) == [at.id]

    def test_query_orders_by_create_time_then_id_and_pages(self, persistence: PersistenceProvider) -> None:
        definition = f"query-{new_id()}"
        # Created out of time order, with ties on create_time that the id must break.
        offsets = [5, 1, 3, 1, 0, 3, 3, 2]
        instances = [make_instance(workflow_definition_id=definition, create_time=T0 + n * SECOND) for n in offsets]
        for instance in instances:
            persistence.create_workflow(instance)
        expected = [i.id for i in sorted(instances, key=lambda i: (i.create_time, i.id))]

        assert query_ids(persistence, workflow_definition_id=definition) == expected
        pages = [query_ids(persistence, workflow_definition_id=definition, limit=3, offset=o) for o in (0, 3, 6, 9)]
        assert [len(page) for page in pages] == [3, 3, 2, 0]
        assert [i for page in pages for i in page] == expected
        mine = set(expected)
        by_status = query_ids(persistence, status=WorkflowStatus.RUNNABLE, limit=10_000)
        assert [i for i in by_status if i in mine] == expected

    def test_query_follows_persisted_changes(self, persistence: PersistenceProvider) -> None:
        instance = make_instance(workflow_definition_id=f"query-{new_id()}", reference=f"ref-{new_id()}")
        persistence.create_workflow(instance)
        old_reference = instance.reference
        instance.status = WorkflowStatus.COMPLETE
        instance.complete_time = T0
        instance.reference = f"ref-{new_id()}"
        persistence.persist_workflow(instance)

        assert instance.id not in query_ids(persistence, status=WorkflowStatus.RUNNABLE, limit=10_000)
        assert instance.id in query_ids(persistence, status=WorkflowStatus.COMPLETE, limit=10_000)
        assert query_ids(persistence, reference=old_reference) == []
        assert persistence.query_instances(InstanceQuery(reference=instance.reference)) == [instance]

    # ----------------------------------------------------------- subscriptions

    def test_subscriptions_match_name_key_and_time(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        name = f"event-{new_id()}"
        match = make_subscription(instance, name, "key-1", T0)
        early = make_subscription(instance, name, "key-1", T0 - SECOND)
        later = make_subscription(instance, name, "key-1", T0 + SECOND)
        misses = [
            make_subscription(instance, name, "key-10", T0),
            make_subscription(instance, name, "KEY-1", T0),
            make_subscription(instance, name, "key-2", T0),
            make_subscription(instance, f"{name}-other", "key-1", T0),
        ]
        persistence.persist_workflow(instance, subscriptions=[match, early, later, *misses])

        found = persistence.get_subscriptions(name, "key-1", T0)
        assert sorted(found, key=lambda s: s.subscribe_as_of) == [early, match]
        assert persistence.get_subscriptions(name, "key-1", T0 - 2 * SECOND) == []
        assert persistence.get_subscriptions(name, "no-such-key", T0 + SECOND) == []

    def test_terminated_subscriptions_are_removed(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        name = f"event-{new_id()}"
        ended = make_subscription(instance, name, "k", T0)
        kept = make_subscription(instance, name, "k", T0)
        persistence.persist_workflow(instance, subscriptions=[ended, kept])
        assert len(persistence.get_subscriptions(name, "k", T0)) == 2

        persistence.persist_workflow(instance, terminated_subscriptions=[ended.id])
        assert persistence.get_subscriptions(name, "k", T0) == [kept]

    # ------------------------------------------------------------------ events

    @pytest.mark.parametrize(
        "event_data",
        [None, "text", 3.25, [1, [2, 3]], {"when": T0, "object": ContractData("e", 1, ["x"])}],
        ids=["none", "str", "float", "list", "dict"],
    )
    def test_event_round_trip(self, persistence: PersistenceProvider, event_data: Any) -> None:
        event = Event(event_name="paid", event_key="order-1", event_data=event_data, event_time=T0)
        persistence.create_event(event)
        loaded = persistence.get_event(event.id)
        assert loaded == event
        assert _aware(loaded.event_time)

    def test_returned_events_are_independent_copies(self, persistence: PersistenceProvider) -> None:
        event = Event(event_name="paid", event_key="k", event_data={"items": [1]}, event_time=T0)
        persistence.create_event(event)
        loaded = persistence.get_event(event.id)
        loaded.event_data["items"].append(2)
        loaded.is_processed = True
        assert persistence.get_event(event.id) == Event(
            event_name="paid", event_key="k", event_data={"items": [1]}, event_time=T0, id=event.id
        )

    def test_get_unknown_event_raises(self, persistence: PersistenceProvider) -> None:
        with pytest.raises(EventNotFoundError):
            persistence.get_event(new_id())

    def test_get_events_at_or_after_as_of_oldest_first(self, persistence: PersistenceProvider) -> None:
        name = f"event-{new_id()}"
        times = [T0 + 3 * SECOND, T0 - SECOND, T0, T0 + SECOND]  # created out of time order
        events = [Event(event_name=name, event_key="k", event_data=i, event_time=t) for i, t in enumerate(times)]
        other_key = Event(event_name=name, event_key="k2", event_time=T0 + SECOND)
        other_name = Event(event_name=f"{name}-x", event_key="k", event_time=T0 + SECOND)
        for event in [*events, other_key, other_name]:
            persistence.create_event(event)
        persistence.mark_event_processed(events[3].id)

        found = persistence.get_events(name, "k", T0)
        # event_data is the creation index: oldest first is T0 (2), T0+1s (3), T0+3s (0).
        assert [(e.event_data, e.is_processed) for e in found] == [(2, False), (3, True), (0, False)]
        assert found[0] == events[2]

    def test_runnable_events_unprocessed_and_due_oldest_first(self, persistence: PersistenceProvider) -> None:
        name = f"event-{new_id()}"
        late = Event(event_name=name, event_key="a", event_time=T0)
        early = Event(event_name=name, event_key="b", event_time=T0 - 2 * SECOND)
        middle = Event(event_name=name, event_key="c", event_time=T0 - SECOND)
        future = Event(event_name=name, event_key="d", event_time=T0 + SECOND)
        done = Event(event_name=name, event_key="e", event_time=T0 - SECOND)
        for event in [late, future, middle, done, early]:
            persistence.create_event(event)
        persistence.mark_event_processed(done.id)
        names = {late.id: "late", early.id: "early", middle.id: "middle", future.id: "future", done.id: "done"}

        found = [names[i] for i in persistence.get_runnable_events(T0) if i in names]
        assert found == ["early", "middle", "late"]

    def test_marking_an_unknown_event_raises(self, persistence: PersistenceProvider) -> None:
        with pytest.raises(EventNotFoundError):
            persistence.mark_event_processed(new_id())
        with pytest.raises(EventNotFoundError):
            persistence.mark_event_unprocessed(new_id())

    def test_creating_an_event_again_replaces_it(self, persistence: PersistenceProvider) -> None:
        name = f"event-{new_id()}"
        first = Event(event_name=name, event_key="k", event_data=1, event_time=T0)
        persistence.create_event(first)
        persistence.mark_event_processed(first.id)
        again = Event(event_name=name, event_key="k", event_data=2, event_time=T0 - SECOND, id=first.id)
        persistence.create_event(again)
        assert persistence.get_event(first.id) == again
        assert persistence.get_events(name, "k", T0 - 2 * SECOND) == [again]
        assert persistence.get_runnable_events(T0).count(first.id) == 1

        moved = Event(event_name=name, event_key="k2", event_data=3, event_time=T0, is_processed=True, id=first.id)
        persistence.create_event(moved)
        assert persistence.get_events(name, "k", T0 - 2 * SECOND) == []
        assert persistence.get_events(name, "k2", T0 - 2 * SECOND) == [moved]
        assert first.id not in persistence.get_runnable_events(T0)

    def test_mark_event_processed_and_unprocessed(self, persistence: PersistenceProvider) -> None:
        name = f"event-{new_id()}"
        first = Event(event_name=name, event_key="k", event_time=T0 - 2 * SECOND)
        second = Event(event_name=name, event_key="k", event_time=T0 - SECOND)
        persistence.create_event(first)
        persistence.create_event(second)
        assert persistence.get_event(first.id).is_processed is False

        persistence.mark_event_processed(first.id)
        assert persistence.get_event(first.id).is_processed is True
        names = {first.id: "first", second.id: "second"}
        assert [names[i] for i in persistence.get_runnable_events(T0) if i in names] == ["second"]

        persistence.mark_event_unprocessed(first.id)
        assert persistence.get_event(first.id).is_processed is False
        # Back in the queue of runnable events, in its place by time.
        assert [names[i] for i in persistence.get_runnable_events(T0) if i in names] == ["first", "second"]

    # ------------------------------------------------------------------ errors

    def test_errors_round_trip_in_order(self, persistence: PersistenceProvider) -> None:
        instance = make_instance()
        persistence.create_workflow(instance)
        errors = [make_error(instance, 1), make_error(instance, 2)]
        persistence.persist_workflow(instance, errors=errors)
        persistence.persist_workflow(instance, errors=[third := make_error(instance, 3)])

        loaded = persistence.get_errors(instance.id)
        assert loaded == [*errors, third]
        assert all(_aware(e.error_time) for e in loaded)
        assert persistence.get_errors(new_id()) == []

    # ------------------------------------------------------------------- purge

    def test_purge_removes_old_finished_instances_and_processed_events(self, persistence: PersistenceProvider) -> None:
        def finished(status: WorkflowStatus, when: datetime) -> WorkflowInstance:
            return make_instance(status=status, complete_time=when, next_execution=None)

        old = finished(WorkflowStatus.COMPLETE, T0 - 3600 * SECOND)
        recent = finished(WorkflowStatus.COMPLETE, T0 + SECOND)
        terminated = finished(WorkflowStatus.TERMINATED, T0 - 3600 * SECOND)
        runnable = make_instance(next_execution=T0 - 3600 * SECOND, create_time=T0 - 7200 * SECOND)
        for instance in [old, recent, terminated, runnable]:
            persistence.create_workflow(instance)
        name = f"event-{new_id()}"
        persistence.persist_workflow(
            old, errors=[make_error(old, 1)], subscriptions=[make_subscription(old, name, "k", T0 - 7200 * SECOND)]
        )
        persistence.persist_workflow(recent, errors=[make_error(recent, 1)])

        old_done = Event(event_name=name, event_key="k", event_time=T0 - 60 * SECOND)
        old_open = Event(event_name=name, event_key="k", event_time=T0 - 60 * SECOND)
        new_done = Event(event_name=name, event_key="k", event_time=T0 + SECOND)
        for event in [old_done, old_open, new_done]:
            persistence.create_event(event)
        persistence.mark_event_processed(old_done.id)
        persistence.mark_event_processed(new_done.id)

        assert persistence.purge(statuses=[WorkflowStatus.COMPLETE], older_than=T0) == 1

        with pytest.raises(WorkflowNotFoundError):
            persistence.get_workflow_instance(old.id)
        assert persistence.get_errors(old.id) == []
        assert persistence.get_subscriptions(name, "k", T0) == []
        for kept in [recent, terminated, runnable]:
            assert persistence.get_workflow_instance(kept.id) == kept
        assert len(persistence.get_errors(recent.id)) == 1
        assert runnable.id in persistence.get_runnable_instances(T0)

        with pytest.raises(EventNotFoundError):
            persistence.get_event(old_done.id)
        assert persistence.get_event(old_open.id).is_processed is False
        assert persistence.get_event(new_done.id).is_processed is True
        assert [e.id for e in persistence.get_events(name, "k", T0 - 3600 * SECOND)] == [old_open.id, new_done.id]

    # ------------------------------------------------------------- concurrency

    def test_concurrent_creates_and_persists(self, persistence: PersistenceProvider) -> None:
        created: list[list[str]] = [[] for _ in range(self.concurrency_threads)]

        def work(index: int) -> None:
            for n in range(50):
                instance = make_instance(data={"thread": index, "n": n})
                persistence.create_workflow(instance)
                created[index].append(instance.id)
                for _ in range(3):
                    persistence.persist_workflow(instance)

        run_threads(self.concurrency_threads, work)
        for index, ids in enumerate(created):
            assert len(ids) == 50
            for n, workflow_id in enumerate(ids):
                stored = persistence.get_workflow_instance(workflow_id)
                assert (stored.revision, stored.data) == (3, {"thread": index, "n": n})

    def test_racing_saves_of_one_revision_exactly_one_wins(self, persistence: PersistenceProvider) -> None:
        count = self.concurrency_threads
        persistence.create_workflow(original := make_instance())
        copies = [persistence.get_workflow_instance(original.id) for _ in range(count)]
        name = f"event-{new_id()}"
        events = [Event(event_name=name, event_key="k", event_data=i, event_time=T0) for i in range(count)]
        barrier = threading.Barrier(count)
        outcomes: list[str] = []

        def save(index: int) -> None:
            copies[index].data = {"winner": index}
            barrier.wait()
            try:
                persistence.persist_workflow(copies[index], events=[events[index]])
                outcomes.append(f"won:{index}")
            except ConcurrencyError:
                outcomes.append("lost")

        run_threads(count, save)
        winners = [o for o in outcomes if o != "lost"]
        assert len(winners) == 1, outcomes
        assert outcomes.count("lost") == count - 1
        stored = persistence.get_workflow_instance(original.id)
        winner = int(winners[0].split(":")[1])
        assert stored.revision == 1
        assert stored.data == {"winner": winner}
        # Only the winner's outbox event was written.
        assert persistence.get_events(name, "k", T0) == [events[winner]]
