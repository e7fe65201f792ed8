"""One execution pass over one workflow instance.

Pure logic: given an instance, its definition and the current time, run every active, awake
pointer once and record what changed on the instance. No storage, queue or lock is touched here,
so the whole engine can be tested without threads. Pointers created during a pass run in the next.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from ._compaction import fold_rounds
from ._errors import StepTimeoutError, WorkflowNotRegisteredError
from ._failures import Failures, end_pointer, failed_outside_saga
from ._interrupts import Cancellations, DeadlinePassed, run_sync_with_deadline, with_deadline
from ._lifecycle import StepEvent
from ._logcontext import log_context
from ._models import (
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
)
from ._step_limits import StepLimits
from ._steps import (
    _ANY,
    ErrorHandling,
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    StepMiddleware,
    WorkflowDefinition,
    WorkflowStep,
)

logger = logging.getLogger("liteflow")

AwaitRunner = Callable[[Awaitable[Any]], Any]
PassMiddleware = Callable[[WorkflowInstance, Callable[[], "PassResult"]], "PassResult"]
"""Wraps every pass: ``middleware(instance, next_)`` must call ``next_()`` and return its result."""
DefinitionLookup = Callable[[str, "int | None"], "WorkflowDefinition | None"]


def _checked(outcome: Any, context: StepExecutionContext, run_awaitable: Callable[[Any], Any]) -> ExecutionResult:
    """What a step's ``run`` returned, as an ExecutionResult: None is ``next()``, an awaitable is
    run to its end first, anything else is an error."""
    if type(outcome) is ExecutionResult:
        return outcome
    if outcome is not None and not isinstance(outcome, ExecutionResult) and hasattr(outcome, "__await__"):
        outcome = run_awaitable(outcome)
    if outcome is None:
        return ExecutionResult.next()
    if not isinstance(outcome, ExecutionResult):
        raise TypeError(f"step {context.step.body_name} returned {outcome!r}, not an ExecutionResult or None")
    return outcome


_NEXT = ExecutionResult(proceed=True)
"""What a step that returned None asks for (``ExecutionResult.next()``). One shared object: the
executor only reads it, and no step or middleware ever sees it."""


@dataclass
class PassResult:
    """What a pass produced besides the changes made to the instance itself."""

    subscriptions: list[EventSubscription] = field(default_factory=list)
    errors: list[ExecutionError] = field(default_factory=list)
    children: list[WorkflowInstance] = field(default_factory=list)
    """Sub-workflows to create before the instance is saved."""
    step_events: list[tuple[StepEvent, ExecutionPointer]] = field(default_factory=list)
    """What happened to which step, in order."""
    steps_run: int = 0
    queued: bool | None = None
    """Whether the instance has QUEUED pointers (known once asked): a step that completes looks for
    those it releases only then, not through every pointer (a parallel for_each ends thousands)."""


def _set_data(data: Any, prop: str, value: Any) -> Any:
    """Write ``prop`` on the workflow data and return the (possibly new) data object."""
    if data is None:
        data = SimpleNamespace()
    if isinstance(data, dict):
        data[prop] = value
    else:
        setattr(data, prop, value)
    return data


OpenChildren = defaultdict[str, int]
"""For each container pointer id, how many pointers inside it have not ended."""


def _open_children(instance: WorkflowInstance) -> OpenChildren:
    """For each container pointer id, how many pointers inside it have not ended (0 for others).
    A defaultdict, not a Counter: it runs several times a pass, and Counter's methods are Python."""
    counts: OpenChildren = defaultdict(int)
    for pointer in instance.execution_pointers:
        if pointer.end_time is None:
            for scope_id in pointer.scope:
                counts[scope_id] += 1
    return counts


def _context(
    instance: WorkflowInstance, step: WorkflowStep, pointer: ExecutionPointer, open_children: OpenChildren
) -> StepExecutionContext:
    return StepExecutionContext(
        workflow=instance,
        step=step,
        execution_pointer=pointer,
        persistence_data=pointer.persistence_data,
        item=pointer.context_item,
        branch_complete=lambda: open_children[pointer.id] == 0,
    )


def _awake(pointer: ExecutionPointer, now: datetime) -> bool:
    """Whether a pointer runs in a pass at ``now``: an active one whose sleep (if any) is over, or
    one waiting for an event that asked to be woken at a time that has come (ExecutionResult with
    both ``event_name`` and ``sleep_for``, e.g. a user task's escalation)."""
    if pointer.active:
        return pointer.sleep_until is None or pointer.sleep_until <= now
    return (
        pointer.status is PointerStatus.WAITING_FOR_EVENT
        and pointer.sleep_until is not None
        and pointer.sleep_until <= now
    )


class WorkflowExecutor:
    def __init__(
        self,
        *,
        retry_interval: timedelta,
        default_error_behavior: ErrorHandling,
        run_awaitable: AwaitRunner,
        find_definition: DefinitionLookup = lambda workflow_id, version: None,
        step_middleware: Sequence[StepMiddleware] = (),
        pass_middleware: Sequence[PassMiddleware] = (),
        random_fraction: Callable[[], float] = random.random,
        cancellations: Cancellations | None = None,
    ) -> None:
        self._failures = Failures(
            retry_interval=retry_interval,
            default_error_behavior=default_error_behavior,
            random_fraction=random_fraction,
        )
        self._run_awaitable = run_awaitable
        self._find_definition = find_definition
        self._middleware = step_middleware
        self._pass_middleware = pass_middleware
        self._cancellations = cancellations

    def execute(
        self, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime, *, wrapped: bool = True
    ) -> PassResult:
        """One pass over ``instance``, inside the pass middleware unless ``wrapped`` is False (what
        the innermost middleware runs). The pass itself is here rather than in a method of its
        own: one call less per pass, for the common host without pass middleware."""
        if wrapped and self._pass_middleware:
            return self._wrapped(instance, definition, now)
        token = log_context.set((instance.id, None))
        try:
            result = PassResult()
            watched = definition.has_watched_steps
            if watched:
                self._cancel_and_expire(instance, definition, now, result)
            # Without containers every count is 0: a fresh defaultdict says so, with no walk over the pointers.
            open_children = _open_children(instance) if definition.has_containers else defaultdict(int)
            pointers = instance.execution_pointers
            # _awake written out for the common cases (active and not sleeping; ended, so not sleeping
            # either, nor active): it runs for every pointer.
            due = [
                pointer
                for pointer in pointers
                if (
                    (pointer.active and pointer.sleep_until is None)
                    or (pointer.sleep_until is not None and _awake(pointer, now))
                )
                and not open_children[pointer.id]
            ]
            for pointer in due:
                if instance.status is not WorkflowStatus.RUNNABLE:
                    break
                if not ((pointer.active and pointer.sleep_until is None) or _awake(pointer, now)):
                    continue  # ended earlier in this pass (end_workflow, compensation)
                step = definition.steps[pointer.step_id]
                self._run_pointer(instance, definition, step, pointer, now, open_children, result)
                result.steps_run += 1
            if watched and result.steps_run and instance.status is WorkflowStatus.RUNNABLE:
                # The steps may have changed what a cancel condition looks at.
                self._cancel_and_expire(instance, definition, now, result)
            self._finish_pass(instance, definition, now)
            return result
        finally:
            log_context.reset(token)

    def _wrapped(self, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime) -> PassResult:
        token = log_context.set((instance.id, None))  # the middleware logs for this workflow too
        try:
            chain: Callable[[], PassResult] = lambda: self.execute(instance, definition, now, wrapped=False)  # noqa: E731
            for middleware in reversed(self._pass_middleware):
                chain = (lambda m, inner: lambda: m(instance, inner))(middleware, chain)
            return chain()
        finally:
            log_context.reset(token)

    # -- running one pointer -----------------------------------------------------------------

    def _run_pointer(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        now: datetime,
        open_children: OpenChildren,
        result: PassResult,
    ) -> None:
        if pointer.start_time is None or pointer.status is PointerStatus.FAILED:
            pointer.start_time = pointer.start_time or now
            result.step_events.append((StepEvent.STARTED, pointer))  # each attempt
        pointer.status = PointerStatus.RUNNING
        pointer.sleep_until = None
        context = _context(instance, step, pointer, open_children)
        left = None if step.timeout is None else (pointer.start_time + step.timeout - now).total_seconds()
        running = None if self._cancellations is None else self._cancellations.running
        key = id(context)
        if running is not None:  # Cancellations.add written out
            running[key] = (instance.id, context)
        token = log_context.set((instance.id, step.name or step.body_name))
        middleware = self._middleware
        try:
            try:
                body = step.body_factory()
                for prop, function in step.inputs:
                    setattr(body, prop, function(instance.data, context))
                if left is None and (  # no middleware applies: none, or only the host's limits and the step has none
                    not middleware
                    or (
                        len(middleware) == 1
                        and middleware[0].__class__ is StepLimits
                        and step.concurrency_limit is None
                        and step.rate_limit is None
                    )
                ):
                    outcome = body.run(context)
                    if outcome is None:  # as _checked makes it, without its calls
                        outcome = _NEXT
                    elif type(outcome) is not ExecutionResult:
                        outcome = _checked(outcome, context, self._run_awaitable)
                else:
                    outcome = self._invoke(body, context, left)
                if outcome._start_child is not None:
                    result.children.append(self._child_instance(instance, outcome, now))
                if outcome._proceed:
                    for prop, output in step.outputs:
                        value, data = output(body), instance.data
                        if data is None or isinstance(data, dict):
                            instance.data = _set_data(data, prop, value)
                        else:  # _set_data written out for an object, the common case
                            setattr(data, prop, value)
            except DeadlinePassed:
                assert step.timeout is not None and pointer.start_time is not None
                self._expire(instance, definition, step, pointer, pointer.start_time + step.timeout, result)
                return
            except Exception as error:  # a failing step is the workflow's business, not the host's
                self._failures.handle(instance, definition, step, pointer, now, error, result)
                return
            finally:
                if running is not None:  # Cancellations.remove; only this thread adds or removes its key
                    del running[key]
            if outcome is _NEXT:  # _apply_result of a step that returned None, written out: most steps
                pointer.persistence_data = None
                self._complete(instance, definition, step, pointer, None, now, result)
            else:
                self._apply_result(instance, definition, step, pointer, outcome, now, result)
        finally:
            log_context.reset(token)

    def _invoke(self, body: StepBody, context: StepExecutionContext, left: float | None) -> ExecutionResult:
        """Run the step; with ``left`` (seconds to its timeout) interrupt it then (``_interrupts``)."""

        def call() -> ExecutionResult:
            if left is None or inspect.iscoroutinefunction(body.run):
                outcome = body.run(context)
            else:
                outcome = run_sync_with_deadline(lambda: body.run(context), context.cancellation, left)
            if (
                left is not None
                and outcome is not None
                and not isinstance(outcome, ExecutionResult)
                and hasattr(outcome, "__await__")
            ):
                outcome = with_deadline(outcome, left)  # then run by _checked
            return _checked(outcome, context, self._run_awaitable)

        chain = call
        for middleware in reversed(self._middleware):
            chain = (lambda m, inner: lambda: m(context, body, inner))(middleware, chain)
        return chain()

    def _child_instance(self, parent: WorkflowInstance, outcome: ExecutionResult, now: datetime) -> WorkflowInstance:
        child = outcome._start_child
        assert child is not None
        version = child.version
        definition = self._find_definition(child.workflow_id, version)
        if definition is None:
            wanted = "" if version is None else f" version {version}"
            raise WorkflowNotRegisteredError(f"sub-workflow {child.workflow_id!r}{wanted} is not registered")
        return WorkflowInstance(
            id=child.id,
            workflow_definition_id=definition.id,
            version=definition.version,
            data=child.data,
            create_time=now,
            next_execution=now,
            execution_pointers=[ExecutionPointer(step_id=definition.start_step)],
            parent_workflow_id=parent.id,
            trace_context=parent.trace_context,
            priority=parent.priority,
        )

    def _apply_result(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        outcome: ExecutionResult,
        now: datetime,
        result: PassResult,
    ) -> None:
        # The result's fields rather than its read-only properties: a call each, a dozen per step.
        pointer.persistence_data = None if outcome._proceed else outcome._persistence_data
        if outcome._fold_rounds and pointer.children:
            fold_rounds(instance, definition, pointer, keep_last=len(step.children) if outcome._proceed else 0)
        if outcome._branch_values is not None:
            scope = [pointer.id, *pointer.scope]
            for value in outcome._branch_values:
                for child_step in outcome._branch_children or step.children:
                    child = ExecutionPointer(
                        step_id=child_step, predecessor_id=pointer.id, context_item=value, scope=scope
                    )
                    pointer.children.append(child.id)
                    instance.execution_pointers.append(child)
        if outcome._proceed:
            self._complete(instance, definition, step, pointer, outcome._outcome_value, now, result)
            if outcome._end_workflow:
                self._end_workflow(instance, now)
            return
        pointer.status = PointerStatus.PENDING
        if outcome._sleep_for is not None:
            pointer.sleep_until = now + outcome._sleep_for
            pointer.status = PointerStatus.SLEEPING
        if outcome._event_name is not None:
            pointer.active = False
            pointer.status = PointerStatus.WAITING_FOR_EVENT
            pointer.event_name = outcome._event_name
            pointer.event_key = outcome._event_key
            pointer.event_published = False
            result.subscriptions.append(
                EventSubscription(
                    workflow_id=instance.id,
                    step_id=step.id,
                    execution_pointer_id=pointer.id,
                    event_name=outcome._event_name,
                    event_key=outcome._event_key or "",
                    subscribe_as_of=outcome._event_as_of or instance.create_time,
                )
            )

    def _complete(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        outcome_value: Any,
        now: datetime,
        result: PassResult,
    ) -> None:
        """End a pointer successfully and start the steps that follow its outcome."""
        pointer.active, pointer.status, pointer.end_time, pointer.sleep_until = False, PointerStatus.COMPLETE, now, None
        pointer.outcome = outcome_value
        result.step_events.append((StepEvent.COMPLETED, pointer))
        for next_step in step.outcomes:
            wanted = next_step.value  # StepOutcome.matches written out: every step
            if wanted is _ANY or wanted == outcome_value:
                instance.execution_pointers.append(
                    ExecutionPointer(
                        step_id=next_step.next_step,
                        predecessor_id=pointer.id,
                        context_item=pointer.context_item,
                        scope=pointer.scope[:],
                    )
                )
        if result.queued is None:  # a loop, not any() over a generator: every step of every workflow
            result.queued = False
            for other in instance.execution_pointers:
                if other.status is PointerStatus.QUEUED:
                    result.queued = True
                    break
        if result.queued:
            for queued in instance.execution_pointers:
                if queued.status is PointerStatus.QUEUED and queued.predecessor_id == pointer.id:
                    queued.status = PointerStatus.PENDING
                    queued.active = True

    @staticmethod
    def _end_workflow(instance: WorkflowInstance, now: datetime) -> None:
        for pointer in instance.execution_pointers:
            if pointer.end_time is None:
                end_pointer(pointer, PointerStatus.CANCELLED, now)
        instance.status = WorkflowStatus.COMPLETE
        instance.complete_time = now

    # -- cancellation and timeouts -------------------------------------------------------------

    def _cancel_and_expire(
        self, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime, result: PassResult
    ) -> None:
        open_children = _open_children(instance) if definition.has_containers else defaultdict(int)
        for pointer in list(instance.execution_pointers):
            if pointer.end_time is None:
                step = definition.steps[pointer.step_id]
                if step.cancel_condition is not None and self._cancel_requested(instance, step, pointer, open_children):
                    self._cancel(instance, pointer, now)
                    if step.proceed_after_cancel:
                        self._complete(instance, definition, step, pointer, None, now, result)
                        pointer.status = PointerStatus.CANCELLED
                elif (
                    step.timeout is not None
                    and pointer.start_time is not None
                    and now >= pointer.start_time + step.timeout
                ):
                    self._expire(instance, definition, step, pointer, now, result)

    def _cancel_requested(
        self, instance: WorkflowInstance, step: WorkflowStep, pointer: ExecutionPointer, open_children: OpenChildren
    ) -> bool:
        assert step.cancel_condition is not None
        try:
            return bool(step.cancel_condition(instance.data, _context(instance, step, pointer, open_children)))
        except Exception:
            logger.exception("cancel condition of step %s in workflow %s failed", step.id, instance.id)
            return False

    @staticmethod
    def _cancel(
        instance: WorkflowInstance, pointer: ExecutionPointer, now: datetime, *, inside_only: bool = False
    ) -> None:
        """End everything still open inside a pointer, and the pointer itself unless ``inside_only``."""
        for inner in instance.execution_pointers:
            if inner.end_time is None and (pointer.id in inner.scope or (inner is pointer and not inside_only)):
                end_pointer(inner, PointerStatus.CANCELLED, now)

    def _expire(
        self,
        instance: WorkflowInstance,
        definition: WorkflowDefinition,
        step: WorkflowStep,
        pointer: ExecutionPointer,
        now: datetime,
        result: PassResult,
    ) -> None:
        self._cancel(instance, pointer, now, inside_only=True)
        if step.timeout_outcome is not _ANY:
            self._complete(instance, definition, step, pointer, step.timeout_outcome, now, result)
            return
        # Fail, and start the step afresh if it is retried: a new clock, a new wait.
        pointer.start_time = None
        pointer.persistence_data = None
        pointer.event_published = False
        pointer.active = True
        error = StepTimeoutError(
            f"step {step.name or step.body_name} timed out after {step.timeout}", workflow_id=instance.id, step=step.id
        )
        self._failures.handle(instance, definition, step, pointer, now, error, result)

    # -- after the pass ------------------------------------------------------------------------

    def _finish_pass(self, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime) -> None:
        if instance.status is not WorkflowStatus.RUNNABLE:
            instance.next_execution = None
            return
        for pointer in instance.execution_pointers:  # a loop, not all(): one Python call less per pointer
            if pointer.end_time is None:
                break
        else:
            failed = failed_outside_saga(instance, definition)
            instance.status = WorkflowStatus.TERMINATED if failed else WorkflowStatus.COMPLETE
            instance.complete_time = now
            instance.next_execution = None
            return
        open_children = _open_children(instance) if definition.has_containers else defaultdict(int)
        next_execution: datetime | None = None
        for pointer in instance.execution_pointers:
            due: datetime | None = None
            if pointer.active and not open_children[pointer.id]:
                due = pointer.sleep_until or now
            elif pointer.status is PointerStatus.WAITING_FOR_EVENT and pointer.sleep_until is not None:
                due = pointer.sleep_until  # a wait that also wakes at a time
            if definition.has_watched_steps and pointer.end_time is None and pointer.start_time is not None:
                timeout = definition.steps[pointer.step_id].timeout
                if timeout is not None:
                    deadline = pointer.start_time + timeout
                    due = deadline if due is None else min(due, deadline)
            if due is not None and (next_execution is None or due < next_execution):
                next_execution = due
        instance.next_execution = next_execution
