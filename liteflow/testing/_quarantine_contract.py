"""The part of the persistence contract about stored data that cannot be decoded (quarantine).

A store may hold an instance or event its provider cannot decode: written by a broken or
malicious writer, or by an older LiteFlow that accepted data too deep to load. Such a record must
never make a read raise: it comes back *quarantined* (its data an
:class:`~liteflow.core.UnreadableData`, an instance without pointers), built from the fields the
provider keeps beside the record, so queries and pages containing it still work, and saving it again
keeps the original record untouched while its status, errors and events change as for any other.

A provider's test class shows how to damage a record in its backend by overriding
:meth:`QuarantineCases.corrupt_instance` and :meth:`QuarantineCases.corrupt_event`; the tests skip
without them. :func:`splice_json` helps when the record is JSON text.
"""

from __future__ import annotations

import json

import pytest

from liteflow.core import Event, PersistenceProvider, UnreadableData, WorkflowNotFoundError, WorkflowStatus
from liteflow.core._models import new_id
from liteflow.core._providers import InstanceQuery

from ._persistence_data import SECOND, T0, make_error, make_instance

BAD_DATA = {
    # A tag naming a function to "rebuild": the decoder refuses it (nothing is imported or run).
    "forbidden-class": '{"$t": "object", "c": "os:system", "v": {"command": "echo owned"}}',
    "malformed-json": '{"items": [1, 2, {"unterminated": ',
    # 400 nested tuples: what LiteFlow saved before it refused data nested too deep to load again.
    "too-deep": '{"$t": "tuple", "v": [' * 400 + "]}" * 400,
}
"""JSON texts standing for unreadable user data, by what is wrong with them."""


def splice_json(record_text: str, field: str, data_json: str) -> str:
    """``record_text`` (a JSON object) with the value of ``field`` replaced by the raw text
    ``data_json``, which need not be valid JSON."""
    record = json.loads(record_text)
    marker = f"<{new_id()}>"
    record[field] = marker
    return json.dumps(record).replace(json.dumps(marker), data_json, 1)


class QuarantineCases:
    """Mixed into :class:`~liteflow.testing.PersistenceContract`."""

    def corrupt_instance(self, persistence: PersistenceProvider, workflow_id: str, data_json: str) -> None:
        """Make the stored workflow data of an instance read as ``data_json`` (JSON text, perhaps
        invalid), writing straight to the backend. Override in the provider's test class."""
        pytest.skip(f"{type(self).__name__} does not define corrupt_instance")

    def corrupt_event(self, persistence: PersistenceProvider, event_id: str, data_json: str) -> None:
        """Make the stored data of an event read as ``data_json``, writing straight to the backend."""
        pytest.skip(f"{type(self).__name__} does not define corrupt_event")

    @pytest.fixture(params=sorted(BAD_DATA))
    def bad_data(self, request: pytest.FixtureRequest) -> str:
        return BAD_DATA[request.param]

    def test_an_unreadable_instance_comes_back_quarantined(
        self, persistence: PersistenceProvider, bad_data: str
    ) -> None:
        bad = make_instance(reference=f"ref-{new_id()}", complete_time=T0 + SECOND)
        persistence.create_workflow(bad)
        persistence.persist_workflow(bad)
        self.corrupt_instance(persistence, bad.id, bad_data)

        loaded = persistence.get_workflow_instance(bad.id)
        assert loaded.quarantined
        assert isinstance(loaded.data, UnreadableData) and loaded.data.reason
        assert loaded.data.raw is not None
        assert loaded.execution_pointers == []
        assert (loaded.id, loaded.workflow_definition_id, loaded.version, loaded.reference, loaded.status) == (
            bad.id, bad.workflow_definition_id, bad.version, bad.reference, WorkflowStatus.RUNNABLE,
        )  # fmt: skip
        assert (loaded.create_time, loaded.next_execution, loaded.complete_time, loaded.revision) == (
            bad.create_time, bad.next_execution, bad.complete_time, 1,
        )  # fmt: skip
        # Reading decides nothing: the host records the quarantine when it meets the instance.
        assert bad.id in persistence.get_runnable_instances(T0)

    def test_a_page_holding_an_unreadable_instance_still_loads(
        self, persistence: PersistenceProvider, bad_data: str
    ) -> None:
        reference = f"ref-{new_id()}"
        page = [make_instance(reference=reference, create_time=T0 + n * SECOND) for n in range(3)]
        for instance in page:
            persistence.create_workflow(instance)
        self.corrupt_instance(persistence, page[1].id, bad_data)

        loaded = persistence.query_instances(InstanceQuery(reference=reference))
        assert [i.id for i in loaded] == [i.id for i in page]
        assert (loaded[0], loaded[2]) == (page[0], page[2])
        assert loaded[1].quarantined and not loaded[0].quarantined

    def test_a_quarantined_instance_saves_without_decoding_and_can_be_ended_and_purged(
        self, persistence: PersistenceProvider, bad_data: str
    ) -> None:
        bad = make_instance()
        persistence.create_workflow(bad)
        self.corrupt_instance(persistence, bad.id, bad_data)
        placeholder = persistence.get_workflow_instance(bad.id)
        unreadable = placeholder.data

        placeholder.status, placeholder.next_execution = WorkflowStatus.SUSPENDED, None
        persistence.persist_workflow(placeholder, errors=[error := make_error(bad, 1)])
        assert placeholder.revision == 1
        stored = persistence.get_workflow_instance(bad.id)
        assert stored.quarantined and stored.data == unreadable  # the reason and the original kept
        assert (stored.status, stored.next_execution, stored.revision) == (WorkflowStatus.SUSPENDED, None, 1)
        assert bad.id not in persistence.get_runnable_instances(T0 + SECOND)
        assert persistence.get_errors(bad.id) == [error]
        assert [i.id for i in persistence.query_instances(InstanceQuery(status=WorkflowStatus.SUSPENDED))] == [bad.id]

        stored.status, stored.complete_time = WorkflowStatus.TERMINATED, T0
        persistence.persist_workflow(stored)
        ended = persistence.get_workflow_instance(bad.id)
        assert (ended.status, ended.complete_time, ended.data) == (WorkflowStatus.TERMINATED, T0, unreadable)
        assert persistence.purge(statuses=[WorkflowStatus.TERMINATED], older_than=T0 + SECOND) == 1
        with pytest.raises(WorkflowNotFoundError):
            persistence.get_workflow_instance(bad.id)
        assert persistence.get_errors(bad.id) == []

    def test_an_unreadable_event_comes_back_quarantined_and_can_be_set_aside(
        self, persistence: PersistenceProvider, bad_data: str
    ) -> None:
        name = f"event-{new_id()}"
        events = [Event(name, "k", {"n": n}, event_time=T0 + n * SECOND) for n in range(3)]
        for event in events:
            persistence.create_event(event)
        self.corrupt_event(persistence, events[1].id, bad_data)

        bad = persistence.get_event(events[1].id)
        assert bad.quarantined and isinstance(bad.event_data, UnreadableData) and bad.event_data.reason
        assert (bad.id, bad.event_name, bad.event_key, bad.event_time, bad.is_processed) == (
            events[1].id, name, "k", T0 + SECOND, False,
        )  # fmt: skip
        listed = persistence.get_events(name, "k", T0)
        assert [e.id for e in listed] == [e.id for e in events]
        assert (listed[0], listed[2]) == (events[0], events[2])
        assert listed[1].quarantined
        assert bad.id in persistence.get_runnable_events(T0 + SECOND)

        bad.is_processed = True  # set aside: stored again as processed, the original kept
        persistence.create_event(bad)
        assert persistence.get_runnable_events(T0 + 3 * SECOND) == [events[0].id, events[2].id]
        kept = persistence.get_event(bad.id)
        assert (kept.quarantined, kept.is_processed, kept.event_data) == (True, True, bad.event_data)
        assert [e.id for e in persistence.get_events(name, "k", T0)] == [e.id for e in events]
