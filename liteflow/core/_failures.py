"""What a pass does with a step that failed: record the error, then retry, suspend, terminate or
compensate, as the step, its containers, the workflow or the host says (in that order).

Part of the executor's pass (``_executor``): pure logic on the instance, no I/O.
"""

from __future__ import annotations

import logging
import traceback as tb
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._errors import SagaError
from ._models import ExecutionError, ExecutionPointer, PointerStatus, WorkflowInstance, WorkflowStatus
from ._steps import ErrorBehavior, ErrorHandling, RetryPolicy, WorkflowDefinition, WorkflowStep

if TYPE_CHECKING:
    from ._executor import PassResult

logger = logging.getLogger("liteflow")


def type_name(error: BaseException) -> str:
    """The name users import an exception by: LiteFlow's own from ``liteflow.core``."""
    module = type(error).__module__
    if module.startswith("liteflow.core."):
        module = "liteflow.core"
    return f"{module}.{type(error).__qualname__}"


def end_pointer(pointer: ExecutionPointer, status: PointerStatus, now: datetime) -> None:
    pointer.active = False
    pointer.status = status
    pointer.end_time = now
    pointer.sleep_until = None


class Failures:
    """The host's defaults for failing steps, and what a pass does with one."""

    def __init__(
        self, *, retry_interval: timedelta, default_error_behavior: ErrorHandling, random_fraction: Callable[[], float]
    ) -> None:
        self._retry_interval = retry_interval
        self._default_error_behavior = default_error_behavior
        self._random = random_fraction

    def handle(
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
                error_type=type_name(error),
                traceback="".join(tb.format_exception(error)),
                attempt=pointer.retry_count,
                error_time=now,
            )
        )
        if isinstance(error, SagaError):
            pointer.persistence_data = None  # a retried or resumed saga runs its block from the start
        handling, interval = self._error_handling_for(instance, definition, step, pointer)
        behavior: ErrorBehavior
        delay: timedelta | None = None
        if isinstance(handling, RetryPolicy):
            attempts = pointer.retry_count - pointer.retries_before_resume
            if attempts < handling.max_attempts:
                behavior, delay = ErrorBehavior.RETRY, handling.interval(attempts, self._random())
            else:
                behavior = ErrorBehavior(handling.then)
        else:
            behavior = ErrorBehavior(handling)
            if behavior is ErrorBehavior.RETRY:
                delay = interval or definition.default_retry_interval or self._retry_interval
        logger.warning(
            "step %s (%s) of workflow %s failed on attempt %d, will %s: %s",
            step.id,
            step.name or step.body_name,
            instance.id,
            pointer.retry_count,
            behavior.value if delay is None else f"retry in {delay.total_seconds():g} s",
            error,
            exc_info=error,
        )
        if behavior is ErrorBehavior.RETRY:
            assert delay is not None
            pointer.sleep_until = now + delay
        elif behavior is ErrorBehavior.SUSPEND:
            instance.status = WorkflowStatus.SUSPENDED
        elif behavior is ErrorBehavior.TERMINATE:
            end_pointer(pointer, PointerStatus.FAILED, now)
            instance.status = WorkflowStatus.TERMINATED
            instance.complete_time = now
        else:
            compensate(instance, definition, pointer, now, result)

    def _error_handling_for(
        self, instance: WorkflowInstance, definition: WorkflowDefinition, step: WorkflowStep, pointer: ExecutionPointer
    ) -> tuple[ErrorHandling, timedelta | None]:
        """The step's own ``on_error``; else that of the innermost enclosing container that has one
        (inside a saga: COMPENSATE, the saga's own ``on_error`` applying after compensation); else
        the workflow's default; else the host's. With the retry interval that goes with it."""
        if step.error_behavior is not None:
            return step.error_behavior, step.retry_interval
        if not step.is_compensation:
            by_id = {p.id: p for p in instance.execution_pointers if p.id in pointer.scope}
            for scope_id in pointer.scope:
                container = by_id.get(scope_id)
                if container is None:
                    continue
                container_step = definition.steps[container.step_id]
                if container_step.is_saga:
                    return ErrorBehavior.COMPENSATE, None
                if container_step.error_behavior is not None:
                    return container_step.error_behavior, container_step.retry_interval
        return definition.default_error_behavior or self._default_error_behavior, None


def saga_of(
    instance: WorkflowInstance, definition: WorkflowDefinition, pointer: ExecutionPointer
) -> ExecutionPointer | None:
    """The innermost saga container enclosing ``pointer``, or None."""
    by_id = {p.id: p for p in instance.execution_pointers if p.id in pointer.scope}
    for scope_id in pointer.scope:
        container = by_id.get(scope_id)
        if container is not None and definition.steps[container.step_id].is_saga:
            return container
    return None


def failed_outside_saga(instance: WorkflowInstance, definition: WorkflowDefinition) -> bool:
    """A step compensated outside any saga ends the workflow as terminated."""
    for p in instance.execution_pointers:  # a loop, not any() over a generator: every workflow's end
        if p.status is PointerStatus.FAILED and saga_of(instance, definition, p) is None:
            return True
    return False


def compensate(
    instance: WorkflowInstance,
    definition: WorkflowDefinition,
    failed: ExecutionPointer,
    now: datetime,
    result: PassResult,
) -> None:
    """Undo the enclosing saga (or, outside any saga, the whole workflow, which then ends as
    terminated): end what is still open in it and queue the compensation of every completed
    step, latest first, one after the other."""
    saga = saga_of(instance, definition, failed)
    members = [
        (index, p)
        for index, p in enumerate(instance.execution_pointers)
        if p is not saga and (saga is None or saga.id in p.scope)
    ]
    for _, pointer in members:
        if pointer.end_time is None:
            end_pointer(pointer, PointerStatus.FAILED if pointer is failed else PointerStatus.CANCELLED, now)
    done = [
        (pointer.end_time, index, pointer)
        for index, pointer in members
        if pointer.status is PointerStatus.COMPLETE and definition.steps[pointer.step_id].compensation_step is not None
    ]
    to_undo = [pointer for _, _, pointer in sorted(done, key=lambda entry: (entry[0], entry[1]), reverse=True)]
    if saga is not None and definition.steps[saga.step_id].compensation_step is not None:
        to_undo.append(saga)
    if saga is not None:  # the saga's own on_error, if any, applies once this has run
        failure = f"step {definition.steps[failed.step_id].name or failed.step_id} failed"
        saga.persistence_data = {**(saga.persistence_data or {}), "failed": failure}
    scope = [] if saga is None else [saga.id, *saga.scope]
    previous: ExecutionPointer | None = None
    for original in to_undo:
        compensation_step = definition.steps[original.step_id].compensation_step
        assert compensation_step is not None
        if original is not saga:
            original.status = PointerStatus.COMPENSATED
        undo = ExecutionPointer(
            step_id=compensation_step,
            predecessor_id=original.id if previous is None else previous.id,
            context_item=original.context_item,
            scope=scope,
            active=previous is None,
            status=PointerStatus.PENDING if previous is None else PointerStatus.QUEUED,
        )
        instance.execution_pointers.append(undo)
        if previous is not None:
            result.queued = True
        if saga is not None:
            saga.children.append(undo.id)
        previous = undo
    if saga is None and not to_undo:
        instance.status = WorkflowStatus.TERMINATED
        instance.complete_time = now
