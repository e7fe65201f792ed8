"""Built-in step bodies behind the builder's control-flow verbs.

Containers (for_each, while, if) start their children with a branch result, then stay on their
step until every pointer inside them has ended. Their persistence data is a plain dict so that it
stores as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ._steps import ExecutionResult, StepBody, StepExecutionContext

_CHILDREN_ACTIVE = {"children_active": True}


def _children_running(context: StepExecutionContext) -> bool:
    data = context.persistence_data
    return isinstance(data, dict) and bool(data.get("children_active"))


class Foreach(StepBody):
    """Runs its block once per item of ``collection``, all branches in parallel."""

    def __init__(self) -> None:
        self.collection: Iterable[Any] = ()

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if not _children_running(context):
            items = list(self.collection)
            if not items:
                return ExecutionResult.next()
            return ExecutionResult.branch(items, dict(_CHILDREN_ACTIVE))
        if context.branch_complete():
            return ExecutionResult.next()
        return ExecutionResult.persist(context.persistence_data)


class While(StepBody):
    """Runs its block again and again while ``condition`` holds, checked before each round."""

    def __init__(self) -> None:
        self.condition = False

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if not _children_running(context):
            if not self.condition:
                return ExecutionResult.next()
            return ExecutionResult.branch([None], dict(_CHILDREN_ACTIVE))
        if context.branch_complete():
            # Round over: come back with no data so the condition is evaluated afresh.
            return ExecutionResult.persist(None)
        return ExecutionResult.persist(context.persistence_data)


class If(StepBody):
    """Runs its block once when ``condition`` holds, then goes on either way."""

    def __init__(self) -> None:
        self.condition = False

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if not _children_running(context):
            if not self.condition:
                return ExecutionResult.next()
            return ExecutionResult.branch([None], dict(_CHILDREN_ACTIVE))
        if context.branch_complete():
            return ExecutionResult.next()
        return ExecutionResult.persist(context.persistence_data)


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
