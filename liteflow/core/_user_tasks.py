"""User tasks: a step that waits for a person to choose one of its options.

Built on the existing provider contracts, like activities (see ``_activities``):

- An open user task is a subscription with the reserved name ``liteflow.direct.user-task`` and an
  empty key, so the open tasks of the whole store are one indexed ``get_subscriptions`` away; the
  question, the options and the current assignee live in the step's persistence data, read from
  the instance.
- Escalation is a timer on the waiting step itself: the step waits for an answer and asks to be
  woken after ``after``; when it wakes unanswered, it hands the task to the new assignee and waits
  again. The timer is the instance's next execution time, so it survives restarts and moves with
  the manual clock of the test host.
- An answer is a direct result, checked (user, option) when it is given and applied once, under
  the workflow's lock, if the task still waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError, UserActionError
from ._models import ExecutionPointer, PointerStatus, WorkflowInstance
from ._primitives import DIRECT_WAIT_PREFIX, awaits_result
from ._steps import ExecutionResult, StepBody, StepExecutionContext

if TYPE_CHECKING:
    from ._host import WorkflowHost

USER_TASK_WAIT = DIRECT_WAIT_PREFIX + "user-task"


@dataclass(frozen=True)
class UserAction:
    """A user task waiting for an answer: give it with ``host.publish_user_action(key, user, value)``."""

    key: str
    workflow_id: str
    prompt: str
    assigned_to: str | None
    """Who may answer; None: anyone."""
    options: dict[Any, str]
    """The values one may answer with, and their labels."""
    escalated: bool


class UserTask(StepBody):
    """Asks ``prompt`` of ``assigned_to`` and completes with the chosen option's value as its
    outcome (``answer``, and ``answered_by`` the user who chose it)."""

    def __init__(self) -> None:
        self.prompt = ""
        self.assigned_to: Any = None
        self.options: list[tuple[Any, str]] = []
        self.escalate_after: timedelta | None = None
        self.escalate_to: Any = None
        self.answer: Any = None
        self.answered_by: str | None = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        pointer = context.execution_pointer
        given = pointer.event_data if pointer.event_published else None
        if isinstance(given, dict) and given.get("attempt") == pointer.retry_count:
            self.answer, self.answered_by = given["value"], given["user"]
            return ExecutionResult.outcome(self.answer)
        state = context.persistence_data
        wake: timedelta | None = None
        if isinstance(state, dict) and state.get("attempt") == pointer.retry_count:
            # Woken with no answer: the escalation is due.
            state = {**state, "assigned_to": _user(self.escalate_to), "escalated": True}
        else:
            state = {
                "prompt": str(self.prompt),
                "assigned_to": _user(self.assigned_to),
                "options": [[value, label] for value, label in self.options],
                "attempt": pointer.retry_count,
                "escalated": False,
            }
            wake = self.escalate_after
        return ExecutionResult(event_name=USER_TASK_WAIT, event_key="", persistence_data=state, sleep_for=wake)


def _user(value: Any) -> str | None:
    return None if value is None else str(value)


def _open(pointer: ExecutionPointer) -> bool:
    return (
        pointer.status is PointerStatus.WAITING_FOR_EVENT
        and pointer.event_name == USER_TASK_WAIT
        and isinstance(pointer.persistence_data, dict)
    )


def _action(instance: WorkflowInstance, pointer: ExecutionPointer) -> UserAction:
    state = pointer.persistence_data
    return UserAction(
        key=f"{instance.id}:{pointer.id}:{state['attempt']}",
        workflow_id=instance.id,
        prompt=state["prompt"],
        assigned_to=state["assigned_to"],
        options=dict(state["options"]),
        escalated=state["escalated"],
    )


def open_user_actions(host: WorkflowHost, instance_id: str | None, assigned_to: str | None) -> list[UserAction]:
    """User tasks waiting for an answer, of one instance or of the whole store, optionally only
    those assigned to one user."""
    if instance_id is not None:
        instances = [host.persistence.get_workflow_instance(instance_id)]
    else:
        # One subscription per wait (an escalated task has two): load each instance once.
        subscriptions = host.persistence.get_subscriptions(USER_TASK_WAIT, "", host.options.clock())
        ids = list(dict.fromkeys(s.workflow_id for s in subscriptions))
        instances = [host.persistence.get_workflow_instance(i) for i in ids]
    actions = [
        _action(instance, pointer)
        for instance in instances
        if not instance.is_finished
        for pointer in instance.execution_pointers
        if _open(pointer)
    ]
    return [a for a in actions if assigned_to is None or a.assigned_to == assigned_to]


def publish_user_action(host: WorkflowHost, key: str, user: str, value: Any) -> bool:
    """Answer a user task. False if it no longer waits (answered already, or its workflow ended)."""
    parts = key.rsplit(":", 2) if isinstance(key, str) else []
    if len(parts) != 3 or not parts[2].isdigit():
        raise InvalidArgumentError(f"not a user action key: {key!r}")
    if not isinstance(user, str) or not user:
        raise InvalidArgumentError(f"publish_user_action needs the answering user, got {user!r}")
    workflow_id, pointer_id, attempt = parts[0], parts[1], int(parts[2])
    instance = host.persistence.get_workflow_instance(workflow_id)
    pointer = instance.pointer(pointer_id)
    if pointer is None:
        if instance.compacted is not None:
            return False  # a loop's round that ended and was folded away (``_compaction``)
        raise InvalidArgumentError(f"key {key!r} names no step of workflow {workflow_id}")
    if instance.is_finished or not _open(pointer) or not awaits_result(pointer, USER_TASK_WAIT, attempt):
        return False
    action = _action(instance, pointer)
    if action.assigned_to is not None and user != action.assigned_to:
        raise UserActionError(f"user task {key} is assigned to {action.assigned_to!r}, not {user!r}")
    if value not in action.options:
        raise UserActionError(f"user task {key} has no option {value!r}; its options are {list(action.options)}")
    answer = {"value": value, "user": user, "attempt": attempt}
    host._delivery.submit_direct(workflow_id, pointer_id, USER_TASK_WAIT, attempt, answer)
    return True
