"""Repairing workflows that went wrong: run a stopped instance again (``retry``) or start a copy of
it at a chosen step (``fork``). Shared by :class:`WorkflowHost`, the command line and the dashboard.

Retry works on the stored instance under its lock, like a control request, and saves it with the
revision check, so it never overwrites a pass another node saved meanwhile. Without ``from_step`` it
reopens what stopped the workflow: the failed steps of a suspended instance get a fresh set of
attempts; a terminated instance gets back the steps that were open when it ended. With
``from_step`` it rewinds: the latest run of that step, and everything that followed from it, are
removed (compensated only when asked) and the step starts afresh, with a new idempotency key;
other branches (parallel ones, other for_each items) are left as they are.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import ConcurrencyError, InvalidArgumentError, InvalidOperationError, WorkflowNotRegisteredError
from ._lifecycle import LifecycleEventType
from ._models import ExecutionPointer, PointerStatus, WorkflowInstance, WorkflowStatus
from ._primitives import _CHILDREN_ACTIVE
from ._providers import QueueType
from ._steps import WorkflowDefinition, WorkflowStep

if TYPE_CHECKING:
    from ._host import WorkflowHost

logger = logging.getLogger("liteflow")

StepRef = int | str
"""A step named by its numeric id, its ``name``, its builder ``id`` or its class or function name."""

_SAVE_ATTEMPTS = 3
_RETRYABLE = (WorkflowStatus.SUSPENDED, WorkflowStatus.TERMINATED)


def resolve_step(definition: WorkflowDefinition | None, step: StepRef, instance: WorkflowInstance) -> int:
    """The numeric id of ``step`` in the instance's definition.

    A name needs the definition (registered on this host); a number is checked against it when
    there is one. Raises InvalidArgumentError for a step the definition does not have."""
    what = f"workflow {instance.workflow_definition_id!r} version {instance.version}"
    if isinstance(step, int) or (isinstance(step, str) and step.isdigit()):
        step_id = int(step)
        if definition is not None and not 0 <= step_id < len(definition.steps):
            raise InvalidArgumentError(f"{what} has no step {step_id} (its steps are 0 to {len(definition.steps) - 1})")
        return step_id
    if not isinstance(step, str) or not step:
        raise InvalidArgumentError(f"a step is named by its id (a number) or its name, got {step!r}")
    if definition is None:
        raise WorkflowNotRegisteredError(
            f"cannot find step {step!r} by name: {what} is not registered on this host (or give the step's number)"
        )
    # Explicit names first; a class or function name counts only when no explicit name matched.
    keys: list[Callable[[WorkflowStep], str | None]] = [
        lambda s: s.name,
        lambda s: s.external_id,
        lambda s: s.body_name.rsplit(".", 1)[-1],
    ]
    for key in keys:
        found = [s.id for s in definition.steps if key(s) == step]
        if len(found) > 1:
            raise InvalidArgumentError(f"{what} has {len(found)} steps named {step!r} ({found}): give its number")
        if found:
            return found[0]
    names = sorted({s.name or s.body_name.rsplit(".", 1)[-1] for s in definition.steps})
    raise InvalidArgumentError(f"{what} has no step named {step!r}; its steps: {', '.join(names)}")


def retry_workflow(
    host: WorkflowHost, workflow_id: str, from_step: StepRef | None = None, *, compensate: bool = False
) -> None:
    """See :meth:`WorkflowHost.retry_workflow`."""
    if compensate and from_step is None:
        raise InvalidArgumentError("compensate applies to a retry from a step: give from_step too")
    instance = host.persistence.get_workflow_instance(workflow_id)
    _check_retryable(instance)
    definition = host.registry.find(instance.workflow_definition_id, instance.version)
    step_id = None if from_step is None else resolve_step(definition, from_step, instance)
    if compensate and definition is None:
        raise WorkflowNotRegisteredError(
            f"cannot compensate: workflow {instance.workflow_definition_id!r} version {instance.version} "
            "is not registered on this host"
        )
    if not host.lock.acquire(workflow_id):
        raise InvalidOperationError(f"workflow {workflow_id} is busy on another host; try again")
    try:
        for attempt in range(_SAVE_ATTEMPTS):
            instance = host.persistence.get_workflow_instance(workflow_id)
            _check_retryable(instance)
            before, now = instance.status, host.options.clock()
            if step_id is None:
                _reopen(instance)
            else:
                _rewind(instance, step_id, definition if compensate else None)
            for pointer in instance.execution_pointers:
                pointer.retries_before_resume = pointer.retry_count  # a fresh set of attempts
            instance.status, instance.next_execution, instance.complete_time = WorkflowStatus.RUNNABLE, now, None
            try:
                host._save(instance, before)
                break
            except ConcurrencyError:
                # Saved meanwhile by a process whose lock this one does not see (an event delivered
                # to it, say): start again from what it saved.
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
    finally:
        host._waiting.release(workflow_id)
    logger.info("workflow %s retried%s", workflow_id, "" if from_step is None else f" from step {from_step}")
    host._schedule(instance)


def fork_workflow(host: WorkflowHost, workflow_id: str, from_step: StepRef | None = None) -> str:
    """See :meth:`WorkflowHost.fork_workflow`."""
    original = host.persistence.get_workflow_instance(workflow_id)
    definition = host.registry.find(original.workflow_definition_id, original.version)
    if from_step is None:
        step_id = definition.start_step if definition is not None else original.execution_pointers[0].step_id
    else:
        step_id = resolve_step(definition, from_step, original)
        _check_top_level(definition, original, step_id)
    now = host.options.clock()
    fork = WorkflowInstance(
        workflow_definition_id=original.workflow_definition_id,
        version=original.version,
        data=copy.deepcopy(original.data),
        reference=original.reference,
        create_time=now,
        next_execution=now,
        execution_pointers=[ExecutionPointer(step_id=step_id)],
    )
    host.persistence.create_workflow(fork)
    host._lifecycle.publish(fork, LifecycleEventType.WORKFLOW_STARTED, now)
    host.queue.enqueue(QueueType.WORKFLOW, fork.id)
    logger.info("workflow %s forked from %s at step %d", fork.id, workflow_id, step_id)
    return fork.id


def _check_retryable(instance: WorkflowInstance) -> None:
    if instance.status not in _RETRYABLE:
        hint = "suspend it first" if instance.status is WorkflowStatus.RUNNABLE else "fork it to run it again"
        raise InvalidOperationError(
            f"cannot retry workflow {instance.id}: it is {instance.status.value} ({hint}); "
            "only suspended or terminated workflows are retried"
        )


def _check_top_level(definition: WorkflowDefinition | None, original: WorkflowInstance, step_id: int) -> None:
    """A fork starts with one pointer and no enclosing containers, so only at a top-level step."""
    if definition is not None:
        top, todo = set(), [definition.start_step]
        while todo:
            current = todo.pop()
            if current not in top:
                top.add(current)
                todo.extend(outcome.next_step for outcome in definition.steps[current].outcomes)
        inside = step_id not in top
    else:
        runs = [p for p in original.execution_pointers if p.step_id == step_id]
        if not runs:
            raise InvalidArgumentError(
                f"step {step_id} never ran in workflow {original.id} and its definition is not registered "
                "on this host, so it cannot be checked: register the definition, or fork at a step that ran"
            )
        inside = bool(runs[-1].scope)
    if inside:
        raise InvalidArgumentError(
            f"step {step_id} is inside a container (for_each, while, if, parallel, saga...): "
            "a fork starts at a top-level step"
        )


def _reopen(instance: WorkflowInstance) -> None:
    """Give back the steps that stopped the workflow. Suspended: its failed steps run again now.
    Terminated: the pointers that ended with it (failed or cancelled at that moment) reopen."""
    if instance.status is WorkflowStatus.SUSPENDED:
        for pointer in instance.execution_pointers:
            if pointer.end_time is None and pointer.status is PointerStatus.FAILED:
                pointer.sleep_until = None
        return
    ended = [
        p
        for p in instance.execution_pointers
        if p.end_time is not None
        and p.end_time == instance.complete_time
        and p.status in (PointerStatus.FAILED, PointerStatus.CANCELLED)
    ]
    if not ended:
        raise InvalidOperationError(
            f"workflow {instance.id} has no step that was stopped when it ended (it may have been "
            "compensated): retry it from a named step"
        )
    for pointer in ended:
        _open(pointer, failed=pointer.status is PointerStatus.FAILED)


def _open(pointer: ExecutionPointer, *, failed: bool = False) -> None:
    """Make an ended pointer run again; a waiting step waits anew, a sleep ends at once."""
    pointer.active = True
    pointer.end_time = None
    pointer.sleep_until = None
    pointer.status = PointerStatus.FAILED if failed else PointerStatus.PENDING  # FAILED: a new attempt
    if pointer.event_name is not None and not pointer.event_published:
        pointer.event_name = pointer.event_key = None


def _rewind(instance: WorkflowInstance, step_id: int, compensate: WorkflowDefinition | None = None) -> None:
    """Remove the latest run of ``step_id`` and everything that followed from it; start it afresh.

    What followed: its successors and what ran inside it, transitively, and what followed the end
    of each container around it. Other branches (parallel ones, other for_each items) stay. With
    ``compensate`` (the definition), the removed steps that completed are compensated first, latest
    first, as a failure would."""
    pointers = instance.execution_pointers
    runs = [i for i, p in enumerate(pointers) if p.step_id == step_id and p.start_time]
    if not runs:
        raise InvalidOperationError(
            f"step {step_id} never ran in workflow {instance.id}: retry goes back to a step that ran "
            "(fork starts a copy at any top-level step)"
        )
    cut = runs[-1]
    target = pointers[cut]
    roots = {target.id}
    roots.update(p.id for p in pointers if p.predecessor_id in target.scope and p.predecessor_id not in p.scope)
    removed = _following(pointers, roots)
    fresh = ExecutionPointer(
        step_id=step_id,
        predecessor_id=target.predecessor_id,
        context_item=copy.deepcopy(target.context_item),
        scope=list(target.scope),
    )
    undo = [] if compensate is None else _compensations(pointers, removed, compensate, fresh)
    kept = [p for p in pointers if p.id not in removed]
    for pointer in kept:
        children = (c for c in pointer.children if c not in removed or c == target.id)
        pointer.children = [fresh.id if c == target.id else c for c in children]
        if pointer.end_time is not None and pointer.id in target.scope:
            _open(pointer)  # the containers around the step wait for it again
            if pointer.persistence_data is None:
                # An ended container forgot it had started its children: it waits for them again
                # instead of starting them anew.
                pointer.persistence_data = dict(_CHILDREN_ACTIVE)
    before = [p for p in pointers[:cut] if p.id not in removed]
    after = (p for p in pointers[cut + 1 :] if p.id not in removed)
    instance.execution_pointers = [*before, *undo, fresh, *after]


def _compensations(
    pointers: list[ExecutionPointer], removed: set[str], definition: WorkflowDefinition, fresh: ExecutionPointer
) -> list[ExecutionPointer]:
    """Pointers running the compensation of each removed step that completed, latest first, one
    after the other; ``fresh`` is queued after the last of them."""
    done = [
        (p.end_time, index, p)
        for index, p in enumerate(pointers)
        if p.id in removed
        and p.status is PointerStatus.COMPLETE
        and definition.steps[p.step_id].compensation_step is not None
    ]
    chain: list[ExecutionPointer] = []
    for _, _, original in sorted(done, key=lambda entry: (entry[0], entry[1]), reverse=True):
        compensation_step = definition.steps[original.step_id].compensation_step
        assert compensation_step is not None
        chain.append(
            ExecutionPointer(
                step_id=compensation_step,
                predecessor_id=chain[-1].id if chain else fresh.predecessor_id,
                context_item=copy.deepcopy(original.context_item),
                scope=list(fresh.scope),
                active=not chain,
                status=PointerStatus.QUEUED if chain else PointerStatus.PENDING,
            )
        )
    if chain:
        fresh.predecessor_id, fresh.active, fresh.status = chain[-1].id, False, PointerStatus.QUEUED
    return chain


def _following(pointers: list[ExecutionPointer], roots: set[str]) -> set[str]:
    """``roots`` and every pointer that came from them: successors, and what ran inside them.
    One pass suffices: a pointer is always created after the one it comes from."""
    found = set(roots)
    for pointer in pointers:
        if pointer.predecessor_id in found or not found.isdisjoint(pointer.scope):
            found.add(pointer.id)
    return found
