"""Concurrency limits per workflow: at most ``limit`` instances (per key) run at once.

Slots are records in the store, one per slot: a small instance of the reserved definition
``liteflow.slot`` with the id ``liteflow.slot:<definition>:<key>:<n>``, stored suspended (so no
host ever runs it) with the id of the instance holding it in its data. Taking a slot is a
revision-checked save of that record, so two hosts can never both take one, on any provider.

Who holds a slot is an *instance*, not a process, and a slot is valid exactly while its holder is
runnable in the store. That is the lease: when the holder completes, is terminated, suspended or
purged, its slot is free, whether or not anybody released it; a host that dies mid-pass leaves its
instances runnable, and the host that takes them over within the lock lease goes on with their
slots, so the limit is never exceeded and no slot leaks. (Named locks held by a process would
lapse with the process but would let a second instance start while the first one, still
running, waits to be taken over, and a lock cannot follow an instance from host to host between
passes.) Slots are released explicitly when an instance leaves the runnable state, so the next
waiter is woken at once; the validity rule only matters after a crash.

An instance over the limit is *queued*: ``queued`` is set on it, it runs no step, and it sleeps
until a slot is released (it is then announced) or until its recheck time, without holding a
worker. Free slots go to waiters in priority-then-start order: a released slot is handed to the
first waiter, and a free slot found otherwise (its holder ended without releasing it) is taken
only by an instance that fewer waiters come before than slots are free.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._errors import ConcurrencyError, InvalidArgumentError, WorkflowNotFoundError
from ._models import WorkflowInstance, WorkflowStatus
from ._providers import InstanceQuery, QueueType

if TYPE_CHECKING:
    from ._builder import Workflow
    from ._host import WorkflowHost
    from ._steps import WorkflowDefinition

SLOT_WORKFLOW = "liteflow.slot"
RECHECK = timedelta(seconds=60)
"""A queued instance looks for a free slot again after between half of this and this (spread so
that waiters do not all look at once). Releases hand slots over and wake waiters at once: the
recheck only matters after a holder ended without releasing its slot (a crash at that moment)."""
_WAITERS_PAGE = 1000


@dataclass(frozen=True)
class Concurrency:
    """How many instances of a workflow may run at once: ``limit`` in all, or per value of
    ``key(data)`` when a key is given. Return one from :meth:`Workflow.concurrency`."""

    limit: int
    key: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise InvalidArgumentError(f"Concurrency limit must be an int of at least 1, got {self.limit!r}")
        if self.key is not None and not callable(self.key):
            raise InvalidArgumentError(f"Concurrency key must be a function of the data, got {self.key!r}")


def concurrency_of(workflow: Workflow) -> Concurrency | None:
    found = workflow.concurrency()
    if found is not None and not isinstance(found, Concurrency):
        raise InvalidArgumentError(
            f"{type(workflow).__name__}.concurrency() must return a Concurrency or None, got {found!r}"
        )
    return found


def key_of(concurrency: Concurrency, instance: WorkflowInstance) -> str:
    """The instance's key (raises what the key function raises)."""
    return "*" if concurrency.key is None else str(concurrency.key(instance.data))


def _slot_ids(definition: WorkflowDefinition, key: str) -> list[str]:
    return [f"{SLOT_WORKFLOW}:{definition.id}:{key}:{n}" for n in range(definition.concurrency.limit)]


def _slot(host: WorkflowHost, slot_id: str, now: datetime) -> WorkflowInstance:
    try:
        return host.persistence.get_workflow_instance(slot_id)
    except WorkflowNotFoundError:
        pass
    fresh = WorkflowInstance(
        id=slot_id, workflow_definition_id=SLOT_WORKFLOW, version=1, data={"holder": None},
        status=WorkflowStatus.SUSPENDED, create_time=now,
    )  # fmt: skip
    try:
        host.persistence.create_workflow(fresh)
    except ConcurrencyError:
        return host.persistence.get_workflow_instance(slot_id)  # created meanwhile by another host
    return fresh


def _holds(host: WorkflowHost, slot: WorkflowInstance) -> bool:
    """Whether the slot's holder is still running (the slot's lease)."""
    holder = _holder(slot)
    if holder is None:
        return False
    try:
        instance = host.persistence.get_workflow_instance(holder)
    except WorkflowNotFoundError:
        return False
    return instance.status is WorkflowStatus.RUNNABLE


def _order(instance: WorkflowInstance) -> tuple[int, datetime, str]:
    """Higher priority first, then the earlier start (instances carry a priority where starts set one)."""
    priority = getattr(instance, "priority", 0)
    return (-priority if isinstance(priority, int) else 0, instance.create_time, instance.id)


def _holder(slot: WorkflowInstance) -> str | None:
    holder = slot.data.get("holder") if isinstance(slot.data, dict) else None
    return holder if isinstance(holder, str) else None


def _waiters(
    host: WorkflowHost, definition: WorkflowDefinition, key: str, slots: list[WorkflowInstance]
) -> list[WorkflowInstance]:
    """Queued instances of this definition and key, in the order they get slots; not those that
    have just taken one of ``slots`` (their pass, which clears ``queued``, is under way)."""
    holders = {_holder(slot) for slot in slots}
    query = InstanceQuery(status=WorkflowStatus.RUNNABLE, workflow_definition_id=definition.id, limit=_WAITERS_PAGE)
    found = []
    for instance in host.persistence.query_instances(query):
        if instance.queued and instance.id not in holders:
            try:
                if key_of(definition.concurrency, instance) == key:
                    found.append(instance)
            except Exception:
                continue  # its own pass reports the failing key
    return sorted(found, key=_order)


def admit(
    host: WorkflowHost, instance: WorkflowInstance, definition: WorkflowDefinition, key: str, now: datetime
) -> bool:
    """Whether ``instance`` holds (or has just taken) a slot of ``key`` and may run a pass."""
    slots = [_slot(host, slot_id, now) for slot_id in _slot_ids(definition, key)]
    free = []
    for slot in slots:
        if _holder(slot) == instance.id:
            return True
        if not _holds(host, slot):
            free.append(slot)
    if not free:
        return False
    mine = _order(instance)
    # A newcomer queues behind every waiter; a waiter behind those that come before it.
    ahead = [
        w.id
        for w in _waiters(host, definition, key, slots)
        if w.id != instance.id and (not instance.queued or _order(w) < mine)
    ]
    if len(ahead) >= len(free):
        return False  # theirs to take: the release that freed the slot woke the first of them
    for slot in free:
        slot.data = {"holder": instance.id}
        try:
            host.persistence.persist_workflow(slot)
        except ConcurrencyError:
            continue  # taken meanwhile: try the next one
        return True
    return False


def may_take_slot(instance: WorkflowInstance) -> bool:
    """A queued instance taken from the queue looks for a slot before its recheck time: it was
    announced because one was released."""
    return instance.queued and instance.status is WorkflowStatus.RUNNABLE


def try_admit(
    host: WorkflowHost, instance: WorkflowInstance, definition: WorkflowDefinition, now: datetime
) -> WorkflowInstance | None:
    """None when the instance may run its pass (it holds a slot); else the instance as saved,
    queued for a slot, or suspended if its key cannot be computed. Lock held."""
    try:
        key = key_of(definition.concurrency, instance)
    except Exception as error:  # the user's key function: the instance cannot be placed
        message = f"its concurrency key cannot be computed: {type(error).__name__}: {error}"
        return host._suspend_with_error(instance.id, message, "liteflow.core.InvalidArgumentError")
    if admit(host, instance, definition, key, now):
        instance.queued = False  # saved with the pass
        return None
    if not instance.queued or instance.next_execution is None or instance.next_execution <= now:
        instance.queued, instance.next_execution = True, now + RECHECK * random.uniform(0.5, 1.0)
        host._save(instance, instance.status)
    if _handed_over(host, instance, definition, key):
        # A release handed it a slot while this pass looked (its wake-up found the lock taken).
        instance.queued = False
        return None
    return instance


def _handed_over(host: WorkflowHost, instance: WorkflowInstance, definition: WorkflowDefinition, key: str) -> bool:
    for slot_id in _slot_ids(definition, key):
        with contextlib.suppress(WorkflowNotFoundError):
            if _holder(host.persistence.get_workflow_instance(slot_id)) == instance.id:
                return True
    return False


def release(host: WorkflowHost, instance: WorkflowInstance) -> None:
    """Free the slot of an instance that stopped being runnable, and wake the next waiter."""
    definition = host.registry.find(instance.workflow_definition_id, instance.version)
    if definition is None or definition.concurrency is None:
        return
    try:
        key = key_of(definition.concurrency, instance)
    except Exception:
        return  # it never took a slot
    slots = []
    for slot_id in _slot_ids(definition, key):
        with contextlib.suppress(WorkflowNotFoundError):
            slots.append(host.persistence.get_workflow_instance(slot_id))
    waiters = _waiters(host, definition, key, slots)[:1]
    for slot in slots:
        if _holder(slot) == instance.id:
            # Handed straight to the next waiter: it finds the slot its own, without looking
            # at the others, and a newcomer finds no free slot to take before it.
            slot.data = {"holder": waiters[0].id if waiters else None}
            with contextlib.suppress(ConcurrencyError):  # taken over already
                host.persistence.persist_workflow(slot)
            break
    _wake(host, [w.id for w in waiters])


def _wake(host: WorkflowHost, instance_ids: list[str]) -> None:
    for instance_id in instance_ids:
        host._announce(QueueType.WORKFLOW, instance_id)
