"""HostOptions.max_payload_bytes: too much data is refused before anything is saved."""

from __future__ import annotations

import pickle
from datetime import date
from typing import Any

import pytest

from liteflow.core import (
    ConfigurationError,
    ExecutionResult,
    HostOptions,
    PayloadTooLargeError,
    SerializationError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._payload import check_payload, payload_size
from liteflow.core._serialization import dumps
from liteflow.testing import WorkflowTestHost

LIMIT = 1_000


class Grow(StepBody):
    """Adds ``size`` characters to the data on its first run only."""

    def __init__(self) -> None:
        self.size = 0

    def run(self, context: StepExecutionContext) -> None:
        data = context.workflow.data
        data["runs"] += 1
        if data["runs"] == 1:
            data["blob"] = "x" * self.size


class Keep(StepBody):
    """Keeps ``size`` characters as its persistence data, then goes on."""

    def __init__(self) -> None:
        self.size = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if context.persistence_data is None:
            return ExecutionResult.persist("y" * self.size)
        return ExecutionResult.next()


class Growing(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Grow).input("size", lambda data: data["size"])


class Keeping(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Keep).input("size", lambda data: data["size"])


def test_the_default_limit_is_2_mb_and_none_disables_it() -> None:
    assert HostOptions().max_payload_bytes == 2 * 1024 * 1024
    host = configure_workflow_host(max_payload_bytes=None)
    host.register_workflow(Growing())
    # 3 MB of data is accepted when the limit is off (the memory store takes anything).
    host.start_workflow("Growing", data={"runs": 0, "size": 0, "blob": "z" * 3 * 1024 * 1024})
    for bad in (0, -1, "1MB", 1.5, True):
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            configure_workflow_host(max_payload_bytes=bad)


def test_start_workflow_and_publish_event_refuse_data_over_the_limit_and_store_nothing() -> None:
    host = configure_workflow_host(max_payload_bytes=LIMIT)
    host.register_workflow(Growing())
    with pytest.raises(PayloadTooLargeError) as info:
        host.start_workflow("Growing", data={"runs": 0, "size": 0, "blob": "x" * LIMIT})
    error = info.value
    assert isinstance(error, SerializationError)
    assert (error.what, error.limit) == ("workflow data", LIMIT)
    assert error.size > LIMIT
    assert f"workflow data is {error.size:,} bytes as stored, over the limit of {LIMIT:,} bytes" in str(error)
    assert host.query_workflows() == []

    with pytest.raises(PayloadTooLargeError, match="event data is .* over the limit of 1,000 bytes"):
        host.publish_event("paid", "order-1", ["é" * 200])  # 200 characters, 1,200 bytes as stored
    assert host.persistence.get_runnable_events(host.options.clock()) == []
    host.publish_event("paid", "order-1", "x" * (LIMIT - 10))  # under the limit: fine
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.what, copy.size, copy.limit, str(copy)) == (
        PayloadTooLargeError, error.what, error.size, error.limit, str(error),
    )  # fmt: skip


def _suspended_with(test: WorkflowTestHost, workflow_id: str, what: str) -> Any:
    instance = test.instance(workflow_id)
    assert instance.status is WorkflowStatus.SUSPENDED
    [error] = test.errors(workflow_id)
    assert error.error_type == "liteflow.core.PayloadTooLargeError"
    assert f"{what} is" in error.message and f"over the limit of {LIMIT:,} bytes" in error.message
    return instance


def test_a_pass_leaving_too_much_data_suspends_the_workflow_and_keeps_the_stored_state() -> None:
    test = WorkflowTestHost(Growing(), max_payload_bytes=LIMIT)
    workflow_id = test.start_workflow("Growing", data={"runs": 0, "size": LIMIT})
    instance = _suspended_with(test, workflow_id, "workflow data")
    assert instance.data == {"runs": 0, "size": LIMIT}  # as before the pass: nothing of it was saved
    assert [p.end_time for p in instance.execution_pointers] == [None]

    test.host.resume_workflow(workflow_id)  # the step runs again from the stored state
    test.run_until_idle()
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    assert len(test.errors(workflow_id)) == 2


def test_step_persistence_data_over_the_limit_suspends_the_workflow() -> None:
    test = WorkflowTestHost(Keeping(), max_payload_bytes=LIMIT)
    workflow_id = test.start_workflow("Keeping", data={"size": LIMIT})
    instance = _suspended_with(test, workflow_id, "persistence data of step 0")
    assert instance.execution_pointers[0].persistence_data is None

    fine = test.start_workflow("Keeping", data={"size": LIMIT // 2})
    assert test.instance(fine).status is WorkflowStatus.COMPLETE


def test_the_size_counts_what_plain_json_cannot_hold_and_the_reported_size_is_exact() -> None:
    stamps = {"at": [date(2024, 1, n) for n in range(1, 29)], "pairs": {(1, 2): "x"}}
    assert payload_size(stamps, "data") == len(dumps(stamps).encode())
    with pytest.raises(PayloadTooLargeError) as info:
        check_payload(stamps, 100, "workflow data")
    assert info.value.size == payload_size(stamps, "data")
    check_payload(stamps, payload_size(stamps, "data"), "workflow data")  # exactly at the limit: fine
    with pytest.raises(SerializationError, match=r"cannot serialize workflow data\.f"):
        check_payload({"f": lambda: None}, 10_000, "workflow data")
