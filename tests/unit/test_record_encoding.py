"""How a save encodes an instance (issue 14, round four): the memory store keeps the record dict
itself, text stores splice the data's text (encoded once, for the payload limit and the record)
into the rest of the record, and a pointer's times are formatted once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    ExecutionPointer,
    MemoryPersistenceProvider,
    PayloadTooLargeError,
    SerializationError,
    UnreadableData,
    WorkflowStatus,
)
from liteflow.core._interrupts import Cancellations
from liteflow.core._payload import check_data_payload, lend_checked, lent_data
from liteflow.core._records import (
    _NOTHING,
    _lent,
    forget_lent_data,
    instance_from_record,
    instance_record_text,
    instance_to_record,
    json_text,
    lend_jsonable_data,
    pointer_to_record,
)
from liteflow.core._steps import StepExecutionContext
from liteflow.providers.sqlite import SqlitePersistenceProvider
from liteflow.testing._persistence_data import SECOND, T0, make_instance


@contextmanager
def checked_save(instance: Any, limit: int | None) -> Iterator[None]:
    """``with checked_save(instance, limit): save``, as WorkflowTurn._save saves a pass: the instance
    checked first (raising before anything is saved), its encoded data lent to the save, and what
    the save did not take forgotten on leaving, whatever happened."""
    lend_checked(instance, limit)
    try:
        yield
    finally:
        if _lent.data is not _NOTHING:
            forget_lent_data()


def _rich_instance() -> Any:
    container = ExecutionPointer(step_id=0, start_time=T0, children=["c1"], scope=["outer"])
    ended = ExecutionPointer(step_id=1, start_time=T0, end_time=T0 + SECOND, active=False, outcome={"k": [1, 2]})
    return make_instance(
        data={"name": "Ada", "tags": ["a", "b"], "nested": {"x": (1, 2), "s": {3}}, "é": "ü"},
        execution_pointers=[container, ended],
        trace_context={"traceparent": "00-abc-def-01"},
        priority=3,
    )


def test_the_memory_store_is_not_changed_by_the_saved_instance_changing_afterwards() -> None:
    store = MemoryPersistenceProvider()
    instance = _rich_instance()
    store.create_workflow(instance)
    store.persist_workflow(instance)
    saved = store.get_workflow_instance(instance.id)

    instance.data["name"] = "changed"
    instance.data["tags"].append("c")
    instance.data["nested"]["x"] = None
    pointer = instance.execution_pointers[0]
    pointer.children.append("c2")
    pointer.scope.append("more")
    instance.execution_pointers[1].outcome["k"].append(3)
    assert instance.trace_context is not None
    instance.trace_context["traceparent"] = "changed"
    instance.execution_pointers.append(ExecutionPointer(step_id=2))

    again = store.get_workflow_instance(instance.id)
    assert again == saved
    assert again.data == {"name": "Ada", "tags": ["a", "b"], "nested": {"x": (1, 2), "s": {3}}, "é": "ü"}
    assert again.execution_pointers[0].children == ["c1"] and again.execution_pointers[0].scope == ["outer"]
    assert again.trace_context == {"traceparent": "00-abc-def-01"}


def test_a_loaded_instance_shares_nothing_with_the_memory_store() -> None:
    store = MemoryPersistenceProvider()
    instance = _rich_instance()
    store.create_workflow(instance)
    loaded = store.get_workflow_instance(instance.id)
    loaded.data["tags"].append("z")
    loaded.execution_pointers[0].children.append("c9")
    loaded.execution_pointers[1].outcome["k"].clear()
    assert loaded.trace_context is not None
    loaded.trace_context["x"] = "y"
    fresh = store.get_workflow_instance(instance.id)
    assert fresh.data["tags"] == ["a", "b"]
    assert fresh.execution_pointers[0].children == ["c1"]
    assert fresh.execution_pointers[1].outcome == {"k": [1, 2]}
    assert fresh.trace_context == {"traceparent": "00-abc-def-01"}


def test_the_memory_store_keeps_a_finished_instance_as_text_and_reads_it_back_the_same() -> None:
    store = MemoryPersistenceProvider()
    instance = _rich_instance()
    store.create_workflow(instance)
    assert isinstance(store._instances[instance.id], dict)
    instance.status, instance.complete_time, instance.next_execution = WorkflowStatus.COMPLETE, T0, None
    with checked_save(instance, 10_000):  # the data's text lent, spliced in
        store.persist_workflow(instance)
    stored = store._instances[instance.id]
    assert isinstance(stored, str)
    assert json.loads(stored) == {**instance_to_record(instance), "revision": 1}
    assert store.get_workflow_instance(instance.id) == instance


def test_an_undecodable_memory_record_is_quarantined_with_its_text_as_raw() -> None:
    store = MemoryPersistenceProvider()
    instance = make_instance()
    store.create_workflow(instance)
    record = store._instances[instance.id]
    assert isinstance(record, dict)
    record["data"] = {"$t": "no-such-tag", "v": 1}  # as a record from a newer version might hold
    loaded = store.get_workflow_instance(instance.id)
    assert isinstance(loaded.data, UnreadableData)
    assert isinstance(loaded.data.raw, str) and json.loads(loaded.data.raw) == record
    assert loaded.id == instance.id and loaded.status is WorkflowStatus.RUNNABLE
    store.persist_workflow(loaded)  # the quarantine record: saved and read back without decoding again
    assert store.get_workflow_instance(instance.id).data == loaded.data


@pytest.mark.parametrize("revision", [None, 7])
def test_a_spliced_record_decodes_to_what_the_whole_record_encodes(revision: int | None) -> None:
    instance = _rich_instance()
    whole = instance_to_record(instance)
    if revision is not None:
        whole["revision"] = revision
    lend_jsonable_data(instance.data, *check_data_payload(instance.data, 10_000))
    try:
        spliced = instance_record_text(instance, revision)
    finally:
        forget_lent_data()
    assert spliced != json_text(whole)  # the data comes last: it was spliced
    assert json.loads(spliced) == whole
    assert instance_from_record(json.loads(spliced)) == instance_from_record(whole)
    assert spliced.isascii() and json_text(json.loads(spliced)).__len__() == len(spliced)  # compact, escaped
    assert instance_record_text(instance, revision) == json_text(whole)  # nothing lent: encoded whole


def test_lent_text_is_used_only_for_the_very_data_it_was_made_from() -> None:
    instance = make_instance(data={"a": 1})
    other = {"a": 2}
    with lent_data(other, check_data_payload(other, 1000)):
        assert json.loads(instance_record_text(instance))["data"] == {"a": 1}
    with lent_data(instance.data, check_data_payload(instance.data, 1000)):
        instance.data = {"a": 3}  # replaced after the check: the lent text is not this data's
        assert json.loads(instance_record_text(instance))["data"] == {"a": 3}


def test_the_payload_limit_raises_before_the_sqlite_store_is_written(tmp_path: Any) -> None:
    store = SqlitePersistenceProvider(str(tmp_path / "store.db"))
    try:
        instance = make_instance(data={"small": 1})
        with checked_save(instance, 100):
            store.create_workflow(instance)
        instance.data = {"big": "x" * 200}
        with pytest.raises(PayloadTooLargeError):
            with checked_save(instance, 100):
                store.persist_workflow(instance)
        assert _lent.data is _NOTHING  # refused before anything was lent
        stored = store.get_workflow_instance(instance.id)
        assert stored.revision == 0 and stored.data == {"small": 1}
        with checked_save(instance, 1000):  # under the limit: saved through the spliced text
            store.persist_workflow(instance)
        assert _lent.data is _NOTHING  # taken by the save, or forgotten on leaving
        assert store.get_workflow_instance(instance.id).data == {"big": "x" * 200}
    finally:
        store.close()


def test_a_pointer_s_times_are_formatted_again_when_they_change() -> None:
    pointer = ExecutionPointer(step_id=0, start_time=T0)
    assert pointer_to_record(pointer, "p")["start_time"] == T0.isoformat()
    assert pointer_to_record(pointer, "p")["end_time"] is None
    pointer.end_time = T0 + SECOND
    assert pointer_to_record(pointer, "p")["end_time"] == (T0 + SECOND).isoformat()
    pointer.start_time = T0 + timedelta(hours=1)
    pointer.end_time = None
    record = pointer_to_record(pointer, "p")
    assert record["start_time"] == (T0 + timedelta(hours=1)).isoformat() and record["end_time"] is None
    assert pointer == ExecutionPointer(step_id=0, id=pointer.id, start_time=T0 + timedelta(hours=1))


def test_an_instance_s_create_time_is_formatted_again_when_it_changes() -> None:
    instance = make_instance()
    assert instance_to_record(instance)["create_time"] == instance.create_time.isoformat()
    instance.create_time = T0 + timedelta(days=1)
    assert instance_to_record(instance)["create_time"] == (T0 + timedelta(days=1)).isoformat()


def test_cancellations_set_the_flags_of_that_workflow_s_running_steps_only() -> None:
    cancellations = Cancellations()
    instance, other = make_instance(), make_instance()
    contexts = [
        StepExecutionContext(workflow=workflow, step=None, execution_pointer=ExecutionPointer(step_id=0))  # type: ignore[arg-type]
        for workflow in (instance, instance, other)
    ]
    for context in contexts:
        cancellations.add(context.workflow.id, context)
    cancellations.remove(instance.id, contexts[1])
    cancellations.cancel(instance.id)
    assert [context.cancellation.is_set() for context in contexts] == [True, False, False]
    cancellations.remove(instance.id, contexts[0])
    cancellations.remove(instance.id, contexts[0])  # twice: no error
    assert isinstance(contexts[0].cancellation, threading.Event)


def test_times_shared_by_an_instance_and_its_pointers_are_written_as_each_is() -> None:
    """A step's start and end, and the instance's next execution, are often the very same datetime
    (the pass's now), whose text is then reused; other times are formatted on their own."""
    now, later = T0 + timedelta(minutes=5), T0 + timedelta(minutes=6)
    instance = make_instance()
    instance.execution_pointers = [
        ExecutionPointer(step_id=0, start_time=now, end_time=now),
        ExecutionPointer(step_id=1),
    ]
    instance.next_execution = now
    record = instance_to_record(instance)
    assert (
        record["execution_pointers"][0]["start_time"] == record["execution_pointers"][0]["end_time"] == now.isoformat()
    )
    assert record["next_execution"] == now.isoformat() and record["create_time"] == instance.create_time.isoformat()
    instance.next_execution, instance.complete_time = later, now
    record = instance_to_record(instance)
    assert record["next_execution"] == later.isoformat() and record["complete_time"] == now.isoformat()
    other = make_instance()
    other.next_execution = T0 + timedelta(days=2)
    assert instance_to_record(other)["next_execution"] == (T0 + timedelta(days=2)).isoformat()


def test_an_instance_whose_data_and_a_pointer_both_fail_names_the_data_as_before() -> None:
    instance = make_instance(data={"x": threading.Lock()})
    instance.execution_pointers = [ExecutionPointer(step_id=0, persistence_data={"y": threading.Lock()})]
    with pytest.raises(SerializationError, match=r"cannot serialize data\.x"):
        instance_to_record(instance)
    instance.data = {"x": 1}
    with pytest.raises(SerializationError, match=r"cannot serialize execution_pointers\[0\]\.persistence_data\.y"):
        instance_to_record(instance)
