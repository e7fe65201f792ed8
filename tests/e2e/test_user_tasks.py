"""User tasks: a step waiting for a person to choose an option, with escalation on the manual clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    InvalidArgumentError,
    StepExecutionContext,
    UserActionError,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
)
from liteflow.testing import WorkflowTestHost


def log(name: str) -> Any:
    def step(context: StepExecutionContext) -> None:
        context.workflow.data["log"].append(name)

    step.__qualname__ = name
    return step


class Refund(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(log("requested")).user_task(
            "Approve the refund?", assigned_to=lambda d, c: d["manager"]
        ).with_option("yes", "Approve", lambda b: b.start_with(log("refunded"))).with_option(
            "no", "Reject", lambda b: b.start_with(log("rejected"))
        ).with_escalation(after=timedelta(hours=4), new_assignee=lambda d, c: d["director"]).output(
            "decided_by", lambda step: step.answered_by
        ).then(log("closed"))


def started(manager: str = "alice") -> tuple[WorkflowTestHost, str]:
    test = WorkflowTestHost(Refund())
    workflow_id = test.start_workflow("Refund", data={"log": [], "manager": manager, "director": "dora"})
    return test, workflow_id


def test_the_assignee_sees_the_task_and_answers_it() -> None:
    test, workflow_id = started()
    [action] = test.host.get_open_user_actions(assigned_to="alice")
    assert action.workflow_id == workflow_id and action.prompt == "Approve the refund?"
    assert action.options == {"yes": "Approve", "no": "Reject"} and not action.escalated
    assert test.host.get_open_user_actions(assigned_to="dora") == []
    assert test.host.get_open_user_actions(instance_id=workflow_id) == [action]
    assert test.host.get_open_user_actions() == [action]
    assert test.publish_user_action(action.key, "alice", "no") is True
    instance = test.instance(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["requested", "rejected", "closed"]
    assert instance.data["decided_by"] == "alice"
    assert test.host.get_open_user_actions() == []
    assert test.publish_user_action(action.key, "alice", "yes") is False, "answered twice"
    assert test.instance(workflow_id).data["log"] == ["requested", "rejected", "closed"]


def test_an_unanswered_task_escalates_after_its_time_on_the_manual_clock() -> None:
    test, workflow_id = started()
    test.advance(timedelta(hours=3, minutes=59))
    [action] = test.host.get_open_user_actions()
    assert action.assigned_to == "alice" and not action.escalated
    test.advance(timedelta(minutes=1))
    [escalated] = test.host.get_open_user_actions()
    assert escalated.assigned_to == "dora" and escalated.escalated and escalated.key == action.key
    assert test.host.get_open_user_actions(assigned_to="alice") == []
    with pytest.raises(UserActionError, match="assigned to 'dora', not 'alice'"):
        test.publish_user_action(action.key, "alice", "yes")
    test.advance(timedelta(days=30))  # escalation happens once; the task just waits
    assert [a.assigned_to for a in test.host.get_open_user_actions()] == ["dora"]
    assert test.publish_user_action(action.key, "dora", "yes") is True
    instance = test.instance(workflow_id)
    assert instance.data["log"] == ["requested", "refunded", "closed"] and instance.data["decided_by"] == "dora"
    assert instance.complete_time is not None
    assert instance.complete_time - instance.create_time == timedelta(days=30, hours=4)


def test_an_unknown_option_or_key_is_a_typed_error() -> None:
    test, workflow_id = started()
    [action] = test.host.get_open_user_actions()
    with pytest.raises(UserActionError, match=r"has no option 'maybe'; its options are \['yes', 'no'\]"):
        test.publish_user_action(action.key, "alice", "maybe")
    with pytest.raises(InvalidArgumentError, match="not a user action key"):
        test.publish_user_action("nonsense", "alice", "yes")
    with pytest.raises(InvalidArgumentError, match="answering user"):
        test.publish_user_action(action.key, "", "yes")
    assert test.instance(workflow_id).status is WorkflowStatus.RUNNABLE


def test_an_option_without_a_block_is_the_outcome_and_anyone_may_answer_an_unassigned_task() -> None:
    class Survey(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.user_task("Happy?").with_option(1, "Yes").with_option(0, "No").output(
                "happy", lambda step: step.answer
            ).then(log("thanks"))

    test = WorkflowTestHost(Survey())
    workflow_id = test.start_workflow("Survey", data={"log": []})
    [action] = test.host.get_open_user_actions()
    assert action.assigned_to is None
    test.publish_user_action(action.key, "anybody", 0)
    instance = test.instance(workflow_id)
    assert instance.data == {"log": ["thanks"], "happy": 0}
    assert instance.execution_pointers[0].outcome == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: b.user_task("Q?"), r"user_task needs at least one with_option\(\)"),
        (lambda b: b.user_task("Q?").with_option("a", "A").with_option("a", "A2"), "option 'a' is given twice"),
        (lambda b: b.user_task(""), "user_task needs a prompt"),
        (lambda b: b.user_task("Q?", assigned_to=42), "assigned_to must be a user name or a function"),
        (
            lambda b: b.user_task("Q?").with_option("a", "A").with_escalation(timedelta(0), "x"),
            "with_escalation needs a positive timedelta",
        ),
        (
            lambda b: (
                b.user_task("Q?")
                .with_option("a", "A")
                .with_escalation(timedelta(hours=1), "x")
                .with_escalation(timedelta(hours=2), "y")
            ),
            "with_escalation is already set",
        ),
        (lambda b: b.delay(lambda d, c: timedelta(1)).with_option("a", "A"), r"with_option\(\) follows user_task"),
    ],
)
def test_user_task_builder_misuse_is_a_builder_error(build: Any, message: str) -> None:
    class Broken(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    with pytest.raises(BuilderError, match=message):
        WorkflowTestHost(Broken())


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return f"{postgres_url}?schema={request.getfixturevalue('schema')()}"


def test_escalation_and_answer_on_a_durable_store(store_url: str) -> None:
    test = WorkflowTestHost(Refund(), persistence=store_url)
    try:
        workflow_id = test.start_workflow("Refund", data={"log": [], "manager": "alice", "director": "dora"})
        test.advance(timedelta(hours=4))
        [action] = test.host.get_open_user_actions(assigned_to="dora")
        assert action.escalated and test.host.get_open_user_actions(assigned_to="alice") == []
        assert test.publish_user_action(action.key, "dora", "yes") is True
        assert test.instance(workflow_id).data["log"] == ["requested", "refunded", "closed"]
        assert test.host.get_open_user_actions() == []
    finally:
        test.host.persistence.close()
