"""Cancellation that reaches sub-workflows.

A ``sub_workflow`` step waits for its child. When the wait ends without the child having ended
(the parent is terminated, or ends through ``end_workflow``, or a cancel condition, a failed saga
or a timeout cancels the step), the child is terminated too, and its own children in turn, unless
the step says ``on_parent_end="abandon"``. The host compares a parent's child waits before and
after each change it saves, and terminates the children whose wait went away, after the save
(``Controls.end_children``; best effort: a node that dies in between leaves those children running).
"""

from __future__ import annotations

from ._builder import Constant
from ._models import PointerStatus, WorkflowInstance
from ._primitives import CHILD_COMPLETED_EVENT
from ._steps import WorkflowDefinition, WorkflowStep


def child_waits(instance: WorkflowInstance) -> dict[str, str]:
    """The instance's steps waiting for a sub-workflow: pointer id -> child instance id."""
    waits: dict[str, str] = {}
    for pointer in instance.execution_pointers:  # a loop, not a comprehension: before every pass
        if (
            pointer.event_name == CHILD_COMPLETED_EVENT
            and pointer.status is PointerStatus.WAITING_FOR_EVENT
            and not pointer.event_published
            and pointer.event_key
        ):
            waits[pointer.id] = pointer.event_key
    return waits


def abandons(step: WorkflowStep) -> bool:
    """Whether a sub_workflow step leaves its child running when its wait ends early."""
    return any(
        name == "on_parent_end" and isinstance(value, Constant) and value.value == "abandon"
        for name, value in step.inputs
    )


def children_to_end(
    instance: WorkflowInstance, before: dict[str, str], definition: WorkflowDefinition | None
) -> list[str]:
    """Children whose waiting step (in ``before``) stopped waiting without their end arriving."""
    if not before:
        return []
    still = child_waits(instance)
    ended: list[str] = []
    for pointer in instance.execution_pointers:
        if pointer.id not in before or pointer.id in still or pointer.event_published:
            continue
        known = definition is not None and 0 <= pointer.step_id < len(definition.steps)
        if not (known and definition is not None and abandons(definition.steps[pointer.step_id])):
            ended.append(before[pointer.id])
    return ended
