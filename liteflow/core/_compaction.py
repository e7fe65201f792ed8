"""Compaction: a long loop keeps a bounded instance.

Every round of a ``while_`` and every item of a ``for_each`` adds pointers to the instance, and the
whole instance is saved after every pass: without compaction, round 10,000 writes (and the executor
scans) 10,000 rounds of finished pointers. So a loop folds its finished rounds away: when it starts
a new round, the pointers of its earlier rounds are folded into the instance's
:class:`CompactedHistory` (a tally per step: runs, how they ended, failed attempts, first start and
last end); when it completes, all but its last round are (for a parallel ``for_each``, all but the
last item's branch). What is kept is what something may still read:

- the last round, so the timeline shows it and ``retry_workflow(from_step=...)`` finds the latest
  run of each step of the loop (the latest run is the one a retry goes back to);
- every step that completed and has a compensation: a failure later in an enclosing saga (or,
  outside any saga, anywhere in the workflow) still compensates it, latest first;
- a wait for a sub-workflow that ended without the child's end (cancelled, timed out): the host
  terminates that child after the save by finding this pointer (``_children``);
- the ids of the events the folded waits received (``CompactedHistory.consumed_events``): a wait in
  a later round is given the oldest event its workflow has not consumed, never one again.

Errors are stored apart from the record (``get_workflow_errors``), so a failed attempt folds away
while its error stays; nothing folded is open (a round is over only when everything in it ended),
so no subscription, timer or child is left without its pointer.
"""

from __future__ import annotations

from ._models import CompactedHistory, ExecutionPointer, PointerStatus, StepTally, WorkflowInstance
from ._primitives import CHILD_COMPLETED_EVENT, DIRECT_WAIT_PREFIX
from ._steps import WorkflowDefinition


def fold_rounds(
    instance: WorkflowInstance, definition: WorkflowDefinition, loop: ExecutionPointer, keep_last: int = 0
) -> None:
    """Fold the ended pointers inside ``loop`` into the instance's compacted history, except the
    branches of its last ``keep_last`` children (its last round) and what must be kept (above)."""
    inside = [p for p in instance.execution_pointers if loop.id in p.scope]
    if not inside:
        return
    kept = _following(inside, set(loop.children[-keep_last:])) if keep_last else set()
    folded = [p for p in inside if p.id not in kept and _foldable(p, definition)]
    if not folded:
        return
    history = instance.compacted or CompactedHistory()
    for pointer in folded:
        _tally(history, pointer)
    instance.compacted = history
    gone = {p.id for p in folded}
    instance.execution_pointers = [p for p in instance.execution_pointers if p.id not in gone]
    loop.children = [c for c in loop.children if c not in gone]


def _foldable(pointer: ExecutionPointer, definition: WorkflowDefinition) -> bool:
    if pointer.end_time is None:
        return False
    steps = definition.steps
    compensable = 0 <= pointer.step_id < len(steps) and steps[pointer.step_id].compensation_step is not None
    if compensable and pointer.status is PointerStatus.COMPLETE:
        return False
    return not (pointer.event_name == CHILD_COMPLETED_EVENT and not pointer.event_published)


def _tally(history: CompactedHistory, pointer: ExecutionPointer) -> None:
    history.pointers += 1
    tally = history.steps.setdefault(pointer.step_id, StepTally())
    tally.runs += 1
    tally.statuses[pointer.status.value] = tally.statuses.get(pointer.status.value, 0) + 1
    tally.failed_attempts += pointer.retry_count
    if pointer.start_time is not None and (tally.first_start is None or pointer.start_time < tally.first_start):
        tally.first_start = pointer.start_time
    if pointer.end_time is not None and (tally.last_end is None or pointer.end_time > tally.last_end):
        tally.last_end = pointer.end_time
    if pointer.event_id and _published_wait(pointer):
        history.consumed_events.append(pointer.event_id)


def _published_wait(pointer: ExecutionPointer) -> bool:
    """A wait for a published event. A direct result (activity, user task) or a sub-workflow's end
    is meant for this one pointer, and no later wait can match it: its id need not be kept."""
    name = pointer.event_name or ""
    return not name.startswith(DIRECT_WAIT_PREFIX) and name != CHILD_COMPLETED_EVENT


def _following(pointers: list[ExecutionPointer], roots: set[str]) -> set[str]:
    """``roots`` and every pointer that came from them (successors, and what ran inside them);
    ``pointers`` in creation order, so one pass suffices."""
    found = set(roots)
    for pointer in pointers:
        if pointer.predecessor_id in found or not found.isdisjoint(pointer.scope):
            found.add(pointer.id)
    return found
