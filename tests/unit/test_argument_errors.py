"""Wrong argument types in the public API fail at once with InvalidArgumentError naming the
argument, not with an AttributeError or TypeError from deep inside; a build() that raises gives
BuilderError with the user's exception as its cause."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    InvalidArgumentError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class OneStep(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop)


@pytest.fixture
def host() -> Iterator[WorkflowHost]:
    host = configure_workflow_host()
    host.register_workflow(OneStep())
    yield host
    host.stop()


CALLS: list[tuple[str, Callable[[WorkflowHost], Any], str]] = [
    ("start_workflow", lambda h: h.start_workflow(["X"]), "workflow_id"),  # type: ignore[arg-type]
    ("start_workflow", lambda h: h.start_workflow(""), "workflow_id"),
    ("start_workflow", lambda h: h.start_workflow("OneStep", "1"), "version"),  # type: ignore[arg-type]
    ("start_workflow", lambda h: h.start_workflow("OneStep", reference=object()), "reference"),  # type: ignore[arg-type]
    ("start_workflow", lambda h: h.start_workflow("OneStep", reference=["a"]), "reference"),  # type: ignore[arg-type]
    ("publish_event", lambda h: h.publish_event("e", "k", effective_date="2024-01-01"), "effective_date"),  # type: ignore[arg-type]
    ("publish_event", lambda h: h.publish_event("e", "k", effective_date=datetime(2024, 1, 1)), "effective_date"),
    ("get_workflow_instance", lambda h: h.get_workflow_instance(["x"]), "workflow_id"),  # type: ignore[arg-type]
    ("get_workflow_errors", lambda h: h.get_workflow_errors(42), "workflow_id"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(status="bogus"), "status"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(limit="x"), "limit"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(offset=1.0), "offset"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(created_from="yesterday"), "created_from"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(created_to=datetime(2024, 1, 1)), "created_to"),
    ("query_workflows", lambda h: h.query_workflows(workflow_id=1), "workflow_id"),  # type: ignore[arg-type]
    ("query_workflows", lambda h: h.query_workflows(reference=("a",)), "reference"),  # type: ignore[arg-type]
    ("wait_for_workflow", lambda h: h.wait_for_workflow("id", timeout="x"), "timeout"),  # type: ignore[arg-type]
    ("wait_for_workflow", lambda h: h.wait_for_workflow("id", timeout=-1), "timeout"),
    ("wait_for_workflow", lambda h: h.wait_for_workflow(None), "workflow_id"),  # type: ignore[arg-type]
    ("purge", lambda h: h.purge("bogus"), "status"),  # type: ignore[arg-type]
    ("purge", lambda h: h.purge(older_than="7d"), "older_than"),  # type: ignore[arg-type]
    ("purge", lambda h: h.purge(older_than=timedelta(days=-1)), "older_than"),
    ("suspend_workflow", lambda h: h.suspend_workflow(["x"]), "workflow_id"),  # type: ignore[arg-type]
    ("resume_workflow", lambda h: h.resume_workflow(1), "workflow_id"),  # type: ignore[arg-type]
    ("terminate_workflow", lambda h: h.terminate_workflow(b"x"), "workflow_id"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "invoke", "argument"), CALLS, ids=[f"{c}-{a}" for c, _, a in CALLS])
def test_a_wrong_argument_raises_invalid_argument_error_naming_it(
    host: WorkflowHost, call: str, invoke: Callable[[WorkflowHost], Any], argument: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^{call}: {argument} must "):
        invoke(host)
    assert host.query_workflows() == []  # nothing was started or stored on the way


def test_publish_event_refuses_a_name_that_is_not_a_str(host: WorkflowHost) -> None:
    with pytest.raises(InvalidArgumentError, match="event name"):
        host.publish_event(42, "k")  # type: ignore[arg-type]


def test_good_arguments_of_every_accepted_type_still_work(host: WorkflowHost) -> None:
    workflow_id = host.start_workflow("OneStep", 1, reference="r")
    host.run_until_idle()
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert [i.id for i in host.query_workflows(status="complete", created_from=since, limit=5)] == [workflow_id]
    assert [i.id for i in host.query_workflows(status=WorkflowStatus.COMPLETE)] == [workflow_id]
    assert host.wait_for_workflow(workflow_id, timeout=timedelta(seconds=1)).status is WorkflowStatus.COMPLETE
    assert host.wait_for_workflow(workflow_id, timeout=0).status is WorkflowStatus.COMPLETE
    assert host.purge("complete", older_than=datetime.now(timezone.utc) + timedelta(seconds=1)) == 1


class WaitsWithAStringDate(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("e", lambda d, c: "k", effective_date="2024-01-01")  # type: ignore[arg-type]


def test_wait_for_refuses_an_effective_date_that_is_neither_a_datetime_nor_a_function() -> None:
    builder = WorkflowBuilder()
    step = builder.start_with(Noop)
    with pytest.raises(InvalidArgumentError, match="wait_for: effective_date must be .* got '2024-01-01' \\(str\\)"):
        step.wait_for("e", lambda d, c: "k", effective_date="2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="effective_date must be timezone-aware"):
        step.wait_for("e", lambda d, c: "k", effective_date=datetime(2024, 1, 1))
    with pytest.raises(InvalidArgumentError, match="effective_date"):  # also through register_workflow
        configure_workflow_host().register_workflow(WaitsWithAStringDate())


class Broken(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        raise KeyError("missing-setting")


def test_a_build_that_raises_gives_builder_error_with_the_cause_chained() -> None:
    host = configure_workflow_host()
    with pytest.raises(BuilderError, match=r"Broken.build\(\) raised KeyError: 'missing-setting'") as info:
        host.register_workflow(Broken())
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(InvalidArgumentError, match="Workflow instance"):
        host.register_workflow(Broken)  # type: ignore[arg-type]  # the class, not an instance
