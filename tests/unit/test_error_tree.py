"""Every error LiteFlow raises is a LiteFlowError, with a built-in base where callers relied on one,
and errors about an instance or a step carry them as fields; renamed keywords keep their old name,
deprecated."""

from __future__ import annotations

import pickle
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    ConcurrencyError,
    ErrorBehavior,
    ExecutionResult,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidOperationError,
    LiteFlowError,
    MemoryPersistenceProvider,
    NotIdleError,
    RetryPolicy,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowNotFoundError,
    configure_workflow_host,
)
from liteflow.core._serialization import register_type
from liteflow.testing import WorkflowTestHost


@pytest.mark.parametrize(
    "fields", [{"max_attempts": 0}, {"backoff": 0.5}, {"jitter": 1.0}, {"then": ErrorBehavior.RETRY}]
)
def test_an_invalid_retry_policy_is_an_invalid_argument_error_and_still_a_value_error(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        RetryPolicy(**fields)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LiteFlowError)


def test_sleep_without_a_timedelta_is_an_invalid_argument_type_error_and_still_a_type_error() -> None:
    with pytest.raises(InvalidArgumentTypeError) as caught:
        ExecutionResult.sleep(5)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, InvalidArgumentError)
    assert "timedelta" in str(caught.value)


def test_register_type_of_a_non_class_is_an_invalid_argument_type_error_and_still_a_type_error() -> None:
    with pytest.raises(TypeError) as caught:
        register_type(42)  # type: ignore[call-overload]
    assert isinstance(caught.value, InvalidArgumentTypeError)


class Forever(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: ExecutionResult.sleep(timedelta(seconds=1)))


def test_run_until_idle_still_busy_after_its_last_round_is_not_idle_error_and_still_a_runtime_error() -> None:
    test = WorkflowTestHost(Forever())
    test.host.start_workflow("Forever")  # queued, not run
    with pytest.raises(NotIdleError) as caught:
        test.run_until_idle(max_rounds=1)  # the one round runs it: work was done, so not idle
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, InvalidOperationError)


def test_store_errors_name_the_instance_in_a_field() -> None:
    store = MemoryPersistenceProvider()
    with pytest.raises(WorkflowNotFoundError) as missing:
        store.get_workflow_instance("no-such-id")
    assert missing.value.workflow_id == "no-such-id" and missing.value.step is None
    assert "no-such-id" in str(missing.value)  # the message is as before

    host = configure_workflow_host(persistence_service=store)
    host.register_workflow(Forever())
    instance_id = host.start_workflow("Forever")
    first, second = store.get_workflow_instance(instance_id), store.get_workflow_instance(instance_id)
    store.persist_workflow(first)
    with pytest.raises(ConcurrencyError) as stale:
        store.persist_workflow(second)  # a copy of the same revision: someone else saved first
    assert stale.value.workflow_id == instance_id


def test_fields_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(ConcurrencyError("lost", workflow_id="w-1", step=3)))
    assert (str(error), error.workflow_id, error.step) == ("lost", "w-1", 3)


def test_wait_for_event_takes_effective_date_and_as_of_still_works_with_a_warning() -> None:
    from datetime import datetime, timezone

    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert ExecutionResult.wait_for_event("paid", "1", effective_date=when).event_as_of == when
    with pytest.warns(DeprecationWarning, match="effective_date"):
        assert ExecutionResult.wait_for_event("paid", "1", as_of=when).event_as_of == when


class Named(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: None)


def test_query_workflows_by_definition_id_and_the_old_keyword_still_works_with_a_warning() -> None:
    test = WorkflowTestHost(Named(), Forever())
    named = test.start_workflow("Named")
    test.start_workflow("Forever")
    assert [i.id for i in test.host.query_workflows(definition_id="Named")] == [named]
    with pytest.warns(DeprecationWarning, match="definition_id"):
        assert [i.id for i in test.host.query_workflows(workflow_id="Named")] == [named]


def test_workflow_test_host_takes_persistence_service_and_the_old_keyword_still_works_with_a_warning() -> None:
    store = MemoryPersistenceProvider()
    assert WorkflowTestHost(persistence_service=store).host.persistence is store
    with pytest.warns(DeprecationWarning, match="persistence_service"):
        assert WorkflowTestHost(persistence=store).host.persistence is store


class AsyncStep(StepBody):
    """An ``async def run`` overrides StepBody.run with no ``type: ignore`` (`make lint` checks tests)."""

    async def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.next()


class AsyncFlow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(AsyncStep)


def test_an_async_step_runs() -> None:
    test = WorkflowTestHost(AsyncFlow())
    assert test.run_to_completion(test.start_workflow("AsyncFlow")).status == "complete"
