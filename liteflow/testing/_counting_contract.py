"""Contract cases for what a dashboard reads: ``count_instances``, ``workflow_activity`` and
``query_instances`` newest first."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import Event, InvalidArgumentError, PersistenceProvider, WorkflowStatus
from liteflow.core._models import new_id
from liteflow.core._providers import ActivityCount, InstanceQuery

from ._persistence_data import SECOND, T0, make_instance

MINUTE = 60 * SECOND


class CountingCases:
    """Mixed into :class:`PersistenceContract`; needs its ``persistence`` fixture (an empty store)."""

    def test_count_instances_matches_the_query(self, persistence: PersistenceProvider) -> None:
        definition, other = f"count-{new_id()}", f"count-{new_id()}"
        done: dict[str, Any] = dict(status=WorkflowStatus.COMPLETE, next_execution=None, complete_time=T0)
        for i in range(5):
            persistence.create_workflow(make_instance(workflow_definition_id=definition, create_time=T0 + i * SECOND))
        for i in range(3):
            instance = make_instance(workflow_definition_id=other, create_time=T0 + i * SECOND, **done)
            persistence.create_workflow(instance)
        assert persistence.count_instances(InstanceQuery()) == 8
        assert persistence.count_instances(InstanceQuery(workflow_definition_id=definition)) == 5
        assert persistence.count_instances(InstanceQuery(status=WorkflowStatus.COMPLETE)) == 3
        assert persistence.count_instances(InstanceQuery(status=WorkflowStatus.SUSPENDED)) == 0
        assert persistence.count_instances(InstanceQuery(created_from=T0 + 2 * SECOND)) == 4
        assert persistence.count_instances(InstanceQuery(created_to=T0 + SECOND, reference="ref-1")) == 2
        # Paging fields do not limit a count.
        assert persistence.count_instances(InstanceQuery(limit=1, offset=6)) == 8

    def test_query_newest_first(self, persistence: PersistenceProvider) -> None:
        definition = f"newest-{new_id()}"
        made = [make_instance(workflow_definition_id=definition, create_time=T0 + (i // 2) * SECOND) for i in range(7)]
        for instance in made:
            persistence.create_workflow(instance)
        oldest_first = [i.id for i in persistence.query_instances(InstanceQuery(workflow_definition_id=definition))]
        assert oldest_first == [i.id for i in sorted(made, key=lambda i: (i.create_time, i.id))]
        newest = InstanceQuery(workflow_definition_id=definition, newest_first=True, limit=3)
        pages = [persistence.query_instances(replace(newest, offset=offset)) for offset in (0, 3, 6)]
        assert [i.id for page in pages for i in page] == oldest_first[::-1]
        assert [len(page) for page in pages] == [3, 3, 1]

    def test_recent_events_newest_first(self, persistence: PersistenceProvider) -> None:
        events = [Event(f"recent-{i}", "key", {"i": i}, event_time=T0 + i * SECOND) for i in (3, 0, 4, 1, 2)]
        for event in events:
            persistence.create_event(event)
        persistence.mark_event_processed(events[0].id)  # recent-3
        persistence.mark_event_processed(events[2].id)  # recent-4
        recent = persistence.recent_events(3)
        assert [(e.event_name, e.is_processed, e.event_data) for e in recent] == [
            ("recent-4", True, {"i": 4}),
            ("recent-3", True, {"i": 3}),
            ("recent-2", False, {"i": 2}),
        ]
        assert [e.event_name for e in persistence.recent_events(10)] == [f"recent-{i}" for i in (4, 3, 2, 1, 0)]

    def test_workflow_activity_counts_starts_and_ends_per_period(self, persistence: PersistenceProvider) -> None:
        ended: dict[str, Any] = dict(next_execution=None)
        instances = [
            make_instance(create_time=T0 - MINUTE),  # before the window
            make_instance(create_time=T0 + 10 * SECOND),
            make_instance(create_time=T0 + 70 * SECOND),
            make_instance(
                create_time=T0 - 5 * MINUTE, status=WorkflowStatus.COMPLETE, complete_time=T0 + 61 * SECOND, **ended
            ),
            make_instance(
                create_time=T0 + 5 * SECOND, status=WorkflowStatus.TERMINATED, complete_time=T0 + 125 * SECOND, **ended
            ),
            make_instance(create_time=T0 + 3 * MINUTE),  # at the end: outside [start, end)
        ]
        for instance in instances:
            persistence.create_workflow(instance)
        counts = persistence.workflow_activity(T0, T0 + 3 * MINUTE, MINUTE)
        assert counts == [
            ActivityCount(T0, started=2),
            ActivityCount(T0 + MINUTE, started=1, completed=1),
            ActivityCount(T0 + 2 * MINUTE, terminated=1),
        ]
        assert [c.started for c in persistence.workflow_activity(T0, T0 + 90 * SECOND, MINUTE)] == [2, 1]
        with pytest.raises(InvalidArgumentError):
            persistence.workflow_activity(T0, T0 + MINUTE, timedelta(0))
