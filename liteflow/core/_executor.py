"""One execution pass over one workflow instance.

Pure logic: given an instance, its definition and the current time, run every active, awake
pointer once and record what changed on the instance. No storage, queue or lock is touched here,
so the whole engine can be tested without threads. Pointers created during a pass run in the next.
"""

from __future__ import annotations

import logging
import traceback as tb
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from ._models import (
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
)
from ._steps import (
    ErrorBehavior,
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    WorkflowDefinition,
    WorkflowStep,
)

logger = logging.getLogger("liteflow")

AwaitRunner = Callable[[Awaitable[Any]], Any]


@dataclass
class PassResult:
    """What a pass produced besides the changes made to the instance itself."""

    subscriptions: list[EventSubscription] = field(default_factory=list)
    errors: list[ExecutionError] = field(default_factory=list)
    steps_run: int = 0


def _set_data(data: Any, prop: str, value: Any) -> Any:
    """Write ``prop`` on the workflow data and return the (possibly new) data object."""
    if data is None:
        data = SimpleNamespace()
    if isinstance(data, dict):
        data[prop] = value
    else:
        setattr(data, prop, value)
    return data


def _open_children(instance: WorkflowInstance) -> Counter[str]:
    """For each container pointer id, how many pointers inside it have not ended."""
    counts: Counter[str] = Counter()
    for pointer in instance.execution_pointers:
        if pointer.end_time is None:
            counts.update(pointer.scope)
    return counts


class WorkflowExecutor:
    def __init__(self, *, retry_interval: timedelta, run_awaitable: AwaitRunner) -> None:
        self._retry_interval = retry_interval
        self._run_awaitable = run_awaitable

    def execute(self, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime) -> PassResult:
        result = PassResult()
        open_children = _open_children(instance)
        due = [
            pointer
            for pointer in instance.execution_pointers
            if pointer.active
            and (pointer.sleep_until is None or pointer.sleep_until <= now)
            and open_children[pointer.id] == 0
        ]
        for pointer in due:
            if instance.status is not WorkflowStatus.RUNNABLE:
                break
            step = definition.steps[pointer.step_id]
            self._run_pointer(instance, definition, step, pointer, now, open_children, result)
            result.steps_run += 1
        self._finish_pass(instance, now)
        return result

    def _run_pointer(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        now: datetime,
        open_children: Counter[str],
        result: PassResult,
    ) -> None:
        if pointer.start_time is None:
            pointer.start_time = now
        pointer.status = PointerStatus.RUNNING
        pointer.sleep_until = None
        context = StepExecutionContext(
            workflow=instance,
            step=step,
            execution_pointer=pointer,
            persistence_data=pointer.persistence_data,
            item=pointer.context_item,
            branch_complete=lambda: open_children[pointer.id] == 0,
        )
        try:
            body = step.body_factory()
            for prop, function in step.inputs:
                setattr(body, prop, function(instance.data, context))
            outcome = body.run(context)
            if outcome is not None and not isinstance(outcome, ExecutionResult):
                outcome = self._run_awaitable(outcome) if hasattr(outcome, "__await__") else outcome
            if outcome is None:
                outcome = ExecutionResult.next()
            if not isinstance(outcome, ExecutionResult):
                raise TypeError(f"step {step.body_name} returned {outcome!r}, not an ExecutionResult or None")
            if outcome.proceed:
                self._apply_outputs(instance, step, body)
        except Exception as error:  # a failing step is the workflow's business, not the host's
            self._handle_error(instance, definition, step, pointer, now, error, result)
            return
        self._apply_result(instance, step, pointer, outcome, now, result)

    @staticmethod
    def _apply_outputs(instance: WorkflowInstance, step: WorkflowStep, body: StepBody) -> None:
        for prop, function in step.outputs:
            instance.data = _set_data(instance.data, prop, function(body))

    def _apply_result(
        self,
        instance: WorkflowInstance,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        outcome: ExecutionResult,
        now: datetime,
        result: PassResult,
    ) -> None:
        if outcome.proceed:
            pointer.active = False
            pointer.status = PointerStatus.COMPLETE
            pointer.end_time = now
            pointer.outcome = outcome.outcome_value
            pointer.persistence_data = None
            for next_step in step.outcomes:
                if next_step.matches(outcome.outcome_value):
                    instance.execution_pointers.append(
                        ExecutionPointer(
                            step_id=next_step.next_step,
                            predecessor_id=pointer.id,
                            context_item=pointer.context_item,
                            scope=list(pointer.scope),
                        )
                    )
            return

        pointer.persistence_data = outcome.persistence_data
        pointer.status = PointerStatus.PENDING
        if outcome.branch_values is not None:
            scope = [pointer.id, *pointer.scope]
            for value in outcome.branch_values:
                for child_step in step.children:
                    child = ExecutionPointer(
                        step_id=child_step, predecessor_id=pointer.id, context_item=value, scope=scope
                    )
                    pointer.children.append(child.id)
                    instance.execution_pointers.append(child)
        if outcome.sleep_for is not None:
            pointer.sleep_until = now + outcome.sleep_for
            pointer.status = PointerStatus.SLEEPING
        if outcome.event_name is not None:
            pointer.active = False
            pointer.status = PointerStatus.WAITING_FOR_EVENT
            pointer.event_name = outcome.event_name
            pointer.event_key = outcome.event_key
            pointer.event_published = False
            result.subscriptions.append(
                EventSubscription(
                    workflow_id=instance.id,
                    step_id=step.id,
                    execution_pointer_id=pointer.id,
                    event_name=outcome.event_name,
                    event_key=outcome.event_key or "",
                    subscribe_as_of=outcome.event_as_of or instance.create_time,
                )
            )

    def _handle_error(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        now: datetime,
        error: Exception,
        result: PassResult,
    ) -> None:
        pointer.retry_count += 1
        pointer.status = PointerStatus.FAILED
        result.errors.append(
            ExecutionError(
                workflow_id=instance.id,
                execution_pointer_id=pointer.id,
                step_id=step.id,
                message=str(error) or type(error).__name__,
                error_type=f"{type(error).__module__}.{type(error).__qualname__}",
                traceback="".join(tb.format_exception(error)),
                attempt=pointer.retry_count,
                error_time=now,
            )
        )
        behavior = step.error_behavior or definition.default_error_behavior
        logger.warning(
            "step %s (%s) of workflow %s failed on attempt %d, will %s: %s",
            step.id,
            step.body_name,
            instance.id,
            pointer.retry_count,
            behavior.value,
            error,
            exc_info=error,
        )
        if behavior is ErrorBehavior.RETRY:
            interval = step.retry_interval or definition.default_retry_interval or self._retry_interval
            pointer.sleep_until = now + interval
        elif behavior is ErrorBehavior.SUSPEND:
            instance.status = WorkflowStatus.SUSPENDED
        else:
            instance.status = WorkflowStatus.TERMINATED
            instance.complete_time = now
            pointer.active = False
            pointer.end_time = now

    @staticmethod
    def _finish_pass(instance: WorkflowInstance, now: datetime) -> None:
        if instance.status is not WorkflowStatus.RUNNABLE:
            instance.next_execution = None
            return
        if all(pointer.end_time is not None for pointer in instance.execution_pointers):
            instance.status = WorkflowStatus.COMPLETE
            instance.complete_time = now
            instance.next_execution = None
            return
        open_children = _open_children(instance)
        next_execution: datetime | None = None
        for pointer in instance.execution_pointers:
            if not pointer.active or open_children[pointer.id]:
                continue  # waiting for an event, or a container waiting for its children
            due = pointer.sleep_until or now
            if next_execution is None or due < next_execution:
                next_execution = due
        instance.next_execution = next_execution
