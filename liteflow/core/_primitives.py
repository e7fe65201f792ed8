"""Built-in step bodies behind the builder's control-flow verbs.

Containers (for_each, while, if) start their children with a branch result, then stay on their
step until every pointer inside them has ended. Their persistence data is a plain dict so that it
stores as JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ._errors import ChildWorkflowError, InvalidArgumentError, SagaError
from ._models import ExecutionPointer, PointerStatus
from ._steps import ChildWorkflow, ExecutionResult, StepBody, StepExecutionContext

_CHILDREN_ACTIVE = {"children_active": True}


def _children_running(context: StepExecutionContext) -> bool:
    data = context.persistence_data
    return isinstance(data, dict) and bool(data.get("children_active"))


class Container(StepBody):
    """Starts its children with a branch (``begin``), stays on its step while any pointer inside
    it is open, then decides what comes next (``round_over``)."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if not _children_running(context):
            return self.begin(context)
        if not context.branch_complete():
            return ExecutionResult.persist(context.persistence_data)
        return self.round_over(context)

    def begin(self, context: StepExecutionContext) -> ExecutionResult:
        # The block sees the enclosing for_each item, as the container itself does.
        return ExecutionResult.branch([context.item], dict(_CHILDREN_ACTIVE))

    def round_over(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.next()


class Foreach(Container):
    """Runs its block once per item of ``collection``: all branches at once, or one after the
    other in item order when ``run_parallel`` is false (the collection is then evaluated again for
    each item, so it should not change while the loop runs)."""

    def __init__(self) -> None:
        self.collection: Iterable[Any] = ()
        self.run_parallel: Any = True

    def begin(self, context: StepExecutionContext) -> ExecutionResult:
        items = list(self.collection)
        if not items:
            return ExecutionResult.next()
        if self.run_parallel:
            return ExecutionResult.branch(items, dict(_CHILDREN_ACTIVE))
        return ExecutionResult.branch(items[:1], {**_CHILDREN_ACTIVE, "index": 0})

    def round_over(self, context: StepExecutionContext) -> ExecutionResult:
        # The items done are folded away (``_compaction``): the next one's branch, or the end,
        # leaves only the last item's pointers.
        index = context.persistence_data.get("index")
        if index is not None:
            items = list(self.collection)
            if index + 1 < len(items):
                return ExecutionResult.branch(
                    [items[index + 1]], {**_CHILDREN_ACTIVE, "index": index + 1}
                ).folding_rounds()
        return ExecutionResult(proceed=True, fold_rounds=True)


class Sequence(Container):
    """Runs its block once, then goes on: the body of ``saga``, ``when`` and ``parallel``."""


class Saga(Sequence):
    """A block whose completed steps are compensated, in reverse order, when one of them fails.

    Once compensated, the saga goes on to the next step, unless the saga step has an ``on_error``
    of its own: then it fails with :class:`SagaError`, so that behaviour applies to the whole saga
    (RETRY runs it again from the start, TERMINATE ends the workflow, and so on)."""

    def round_over(self, context: StepExecutionContext) -> ExecutionResult:
        failure = context.persistence_data.get("failed")
        if failure is not None and context.step.error_behavior is not None:
            raise SagaError(
                f"saga {context.step.name or context.step.id} was compensated after: {failure}",
                workflow_id=context.workflow.id,
                step=context.step.id,
            )
        return ExecutionResult.next()


class Parallel(Sequence):
    """Runs each of its ``do`` blocks at once and goes on when all have ended."""


class When(Sequence):
    """The block that runs when the preceding step completed with a given outcome."""


class If(Container):
    """Runs its block once when ``condition`` holds, then goes on either way."""

    def __init__(self) -> None:
        self.condition = False

    def begin(self, context: StepExecutionContext) -> ExecutionResult:
        return super().begin(context) if self.condition else ExecutionResult.next()


class While(If):
    """Runs its block again and again while ``condition`` holds, checked before each round. Each
    new round folds the earlier ones away (``_compaction``), so the last round is what stays."""

    def begin(self, context: StepExecutionContext) -> ExecutionResult:
        return super().begin(context).folding_rounds()

    def round_over(self, context: StepExecutionContext) -> ExecutionResult:
        # Come back with no data, so the condition is evaluated afresh with the new inputs.
        return ExecutionResult.persist(None)


class Decide(Container):
    """Runs the block registered for the value of ``expression``, if any, then goes on."""

    def __init__(self) -> None:
        self.expression: Any = None
        self.branches: list[tuple[Any, int]] = []

    def begin(self, context: StepExecutionContext) -> ExecutionResult:
        chosen = [child for value, child in self.branches if value == self.expression]
        if not chosen:
            return ExecutionResult.next()
        return ExecutionResult(
            branch_values=[context.item], branch_children=chosen, persistence_data=dict(_CHILDREN_ACTIVE)
        )


class Outcomes(Decide):
    """Follows a step that has ``when`` blocks: runs every block whose value equals that step's
    outcome (``expression``), then goes on once, so the steps after the blocks run once however
    many matched, and also when none did."""


def preceding_outcome(data: Any, context: StepExecutionContext) -> Any:
    """The outcome of the step whose completion started this pointer."""
    previous = context.workflow.pointer(context.execution_pointer.predecessor_id or "")
    return None if previous is None else previous.outcome


class Delay(StepBody):
    """Waits ``period`` (a timedelta), then goes on."""

    def __init__(self) -> None:
        self.period = timedelta(0)

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if context.persistence_data is not None:
            return ExecutionResult.next()
        if not isinstance(self.period, timedelta):
            raise InvalidArgumentError(f"delay needs a timedelta, got {self.period!r}")
        return ExecutionResult.sleep(self.period, {"slept": True})


class Detach(StepBody):
    """Starts its block in the background and goes on at once (``schedule`` and ``recur``)."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult(proceed=True, branch_values=[context.item])


class EndWorkflow(StepBody):
    """Completes the whole workflow, ending any branch still open."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult(proceed=True, end_workflow=True)


DIRECT_WAIT_PREFIX = "liteflow.direct."
"""Waits that only a direct result for the step ends (activities, user tasks), never a published
event: see ``_delivery``."""


def awaits_result(pointer: ExecutionPointer | None, wait: str, attempt: int) -> bool:
    """Whether a pointer still waits for a direct result of this kind and attempt."""
    return (
        pointer is not None
        and pointer.status is PointerStatus.WAITING_FOR_EVENT
        and pointer.event_name == wait
        and pointer.retry_count == attempt
    )


ON_PARENT_END = ("terminate", "abandon")
"""What ``sub_workflow(..., on_parent_end=...)`` accepts (see ``_children``)."""

CHILD_COMPLETED_EVENT = "liteflow.workflow-ended"
"""Event a sub-workflow publishes (keyed by its id) when it completes or is terminated."""


class SubWorkflow(StepBody):
    """Starts another registered workflow and waits for it; ``result`` is its final data."""

    def __init__(self) -> None:
        self.workflow_id = ""
        self.version: int | None = None
        self.on_parent_end = "terminate"  # read by the host (_children), not here
        self.data: Any = None
        self.result: Any = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        pointer = context.execution_pointer
        if pointer.event_published:
            ended = pointer.event_data
            if ended["status"] != "complete":
                raise ChildWorkflowError(
                    f"sub-workflow {self.workflow_id} ({pointer.event_key}) was {ended['status']}",
                    workflow_id=context.workflow.id,
                    step=context.step.id,
                )
            self.result = ended["data"]
            return ExecutionResult.next()
        # The child's id derives from this pointer and attempt, so a re-run after a crash finds
        # the child it already started instead of starting a second one.
        child_id = uuid.uuid5(uuid.NAMESPACE_URL, f"liteflow:{context.idempotency_key}").hex
        return ExecutionResult(
            start_child=ChildWorkflow(child_id, self.workflow_id, self.version, self.data),
            event_name=CHILD_COMPLETED_EVENT,
            event_key=child_id,
        )


class WaitFor(StepBody):
    """Waits for an external event; afterwards ``event_data`` holds what was published."""

    def __init__(self) -> None:
        self.event_name = ""
        self.event_key: Any = None
        self.effective_date: datetime | None = None
        self.event_data: Any = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        pointer = context.execution_pointer
        if not pointer.event_published:
            return ExecutionResult.wait_for_event(self.event_name, self.event_key, self.effective_date)
        self.event_data = pointer.event_data
        return ExecutionResult.next()
