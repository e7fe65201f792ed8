"""Quarantine on a running host: stored data that cannot be decoded is set aside once, recorded,
and blocks nothing else. The damage is done with a connection of its own to the SQLite file, as a
broken or hostile writer would."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from polling import wait_until

from liteflow.core import (
    InvalidOperationError,
    StepBody,
    StepExecutionContext,
    UnreadableData,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowNotFoundError,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.testing._quarantine_contract import BAD_DATA, splice_json


class Count(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["steps"] += 1


class ThreeSteps(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Count).then(Count).then(Count)


class WaitForGo(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Count).wait_for("go", lambda data, context: data["key"]).output(
            "got", lambda step: step.event_data
        ).then(Count)


def _corrupt(path: Path, table: str, row_id: str, field: str, data_json: str) -> None:
    with sqlite3.connect(path) as db:
        (record,) = db.execute(f"SELECT record FROM {table} WHERE id = ?", (row_id,)).fetchone()
        db.execute(f"UPDATE {table} SET record = ? WHERE id = ?", (splice_json(record, field, data_json), row_id))


def _host(path: Path) -> WorkflowHost:
    host = configure_workflow_host(f"sqlite:///{path}", poll_interval=0.1)
    host.register_workflow(ThreeSteps())
    host.register_workflow(WaitForGo())
    return host


def _quarantine_logs(caplog: pytest.LogCaptureFixture, item_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "quarantined" in r.getMessage() and item_id in r.getMessage()]


@pytest.mark.parametrize("kind", sorted(BAD_DATA))
def test_a_poisoned_instance_is_quarantined_once_and_can_be_terminated_and_purged(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="liteflow")
    path = tmp_path / "store.db"
    host = _host(path)
    poisoned = host.start_workflow("ThreeSteps", data={"steps": 0}, reference="poisoned")
    _corrupt(path, "workflow", poisoned, "data", BAD_DATA[kind])
    with host:
        others = [host.start_workflow("ThreeSteps", data={"steps": 0}) for _ in range(5)]
        for workflow_id in others:
            done = host.wait_for_workflow(workflow_id, timeout=10)
            assert (done.status, done.data) == (WorkflowStatus.COMPLETE, {"steps": 3})
        wait_until(
            lambda: host.get_workflow_instance(poisoned).status is WorkflowStatus.SUSPENDED, "it to be quarantined"
        )
        # Later passes of the poller and the workers leave it alone: more work, then look again.
        later = host.start_workflow("ThreeSteps", data={"steps": 0})
        assert host.wait_for_workflow(later, timeout=10).status is WorkflowStatus.COMPLETE
        host.poll()

        instance = host.get_workflow_instance(poisoned)
        assert instance.quarantined and isinstance(instance.data, UnreadableData)
        assert (instance.status, instance.next_execution) == (WorkflowStatus.SUSPENDED, None)
        errors = host.get_workflow_errors(poisoned)
        assert len(errors) == 1
        assert errors[0].message.startswith("workflow quarantined: its stored data cannot be read")
        assert errors[0].error_type == "liteflow.core.SerializationError"
        assert len(_quarantine_logs(caplog, poisoned)) == 1
        page = host.query_workflows(workflow_id="ThreeSteps", limit=100)
        assert poisoned in [i.id for i in page] and len(page) == 7
        assert [i.id for i in host.query_workflows(reference="poisoned")] == [poisoned]

        with pytest.raises(InvalidOperationError, match="quarantined"):
            host.resume_workflow(poisoned)
        host.terminate_workflow(poisoned)
        assert host.wait_for_workflow(poisoned, timeout=5).status is WorkflowStatus.TERMINATED
    raw = host.get_workflow_instance(poisoned).data.raw
    assert BAD_DATA[kind] in raw  # the original record is kept for whoever repairs it
    assert host.purge(WorkflowStatus.TERMINATED, older_than=timedelta(0)) >= 1
    with pytest.raises(WorkflowNotFoundError):
        host.get_workflow_instance(poisoned)
    host.persistence.close()


def test_a_poisoned_event_is_set_aside_and_a_later_one_with_its_name_and_key_is_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="liteflow")
    path = tmp_path / "store.db"
    host = _host(path)
    waiting = host.start_workflow("WaitForGo", data={"steps": 0, "key": "order-1"})
    poisoned = host.publish_event("go", "order-1", {"n": 1})
    _corrupt(path, "event", poisoned, "event_data", BAD_DATA["forbidden-class"])
    host.publish_event("go", "order-1", {"n": 2})
    with host:
        done = host.wait_for_workflow(waiting, timeout=10)
        assert (done.status, done.data["got"], done.data["steps"]) == (WorkflowStatus.COMPLETE, {"n": 2}, 2)
        wait_until(lambda: host.persistence.get_event(poisoned).is_processed, "the poisoned event to be set aside")
        # A second workflow waiting on the same name and key is not handed the poisoned event either.
        second = host.start_workflow("WaitForGo", data={"steps": 0, "key": "order-1"})
        host.publish_event("go", "order-1", {"n": 3})
        assert host.wait_for_workflow(second, timeout=10).data["got"] == {"n": 3}
    event = host.persistence.get_event(poisoned)
    assert event.quarantined and event.is_processed
    assert "os:system" in event.event_data.raw
    assert len(_quarantine_logs(caplog, poisoned)) == 1
    host.persistence.close()


def test_a_poisoned_workflow_waiting_for_an_event_is_quarantined_when_the_event_arrives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A waiting workflow is not due, so no worker loads it until its event is delivered.
    caplog.set_level(logging.ERROR, logger="liteflow")
    path = tmp_path / "store.db"
    host = _host(path)
    with host:
        waiting = host.start_workflow("WaitForGo", data={"steps": 0, "key": "order-2"})
        healthy = host.start_workflow("WaitForGo", data={"steps": 0, "key": "order-2"})
        wait_until(
            lambda: all(host.get_workflow_instance(i).data["steps"] == 1 for i in (waiting, healthy)),
            "both workflows to wait for their event",
        )
        _corrupt(path, "workflow", waiting, "data", BAD_DATA["malformed-json"])
        host.publish_event("go", "order-2", "paid")
        assert host.wait_for_workflow(healthy, timeout=10).data["got"] == "paid"
        wait_until(
            lambda: host.get_workflow_instance(waiting).status is WorkflowStatus.SUSPENDED, "it to be quarantined"
        )
    assert host.get_workflow_instance(waiting).quarantined
    [error] = host.get_workflow_errors(waiting)
    assert "quarantined" in error.message
    assert len(_quarantine_logs(caplog, waiting)) == 1
    host.persistence.close()
