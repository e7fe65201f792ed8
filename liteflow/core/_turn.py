"""One turn of a workflow: what a workflow worker does with an instance id taken from the queue.

:meth:`WorkflowTurn.run` reads in the order docs/architecture.md ("One turn of a workflow")
describes: lock, load, re-check waits, passes, release, schedule. Each pass in turn: a missing
definition, a pending control request, a delivery waiting for the lock, the concurrency limit, then
the executor's pass, its sub-workflows, one save and the events for its new subscriptions.
:meth:`WorkflowTurn.continue_locked` is the same turn from its third step, run by an event worker
on the workflow it has just resumed (see ``_delivery``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from . import _limits as limits
from ._children import child_waits, children_to_end
from ._delivery import quarantine_if_unreadable
from ._errors import ConcurrencyError, SerializationError
from ._executor import PassResult
from ._lifecycle import LifecycleEventType
from ._models import WorkflowInstance, WorkflowStatus
from ._payload import lend_checked
from ._providers import QueueType
from ._records import _NOTHING, _lent, forget_lent_data
from ._schedules import running_host
from ._steps import WorkflowDefinition

if TYPE_CHECKING:
    from ._host import WorkflowHost


class WorkflowTurn:
    """The state of one turn: the instance as last loaded or saved, the sub-workflows whose
    waiting step went away (terminated after the lock is released), and whether the turn ended
    early for a delivery waiting for the lock."""

    def __init__(self, host: WorkflowHost, workflow_id: str) -> None:
        self._host = host
        self._workflow_id = workflow_id
        self._instance: WorkflowInstance | None = None
        self._orphans: list[str] = []
        self._yielded = False
        self._definition: WorkflowDefinition | None = None

    def run(self) -> None:
        """Lock, load, re-check waits, passes, release, end orphaned sub-workflows, schedule."""
        host, workflow_id = self._host, self._workflow_id
        # Both in one round trip where the store can (its lock in the same database), else None.
        loaded = host.persistence.acquire_and_load(host.lock, workflow_id)
        if loaded is False or (loaded is None and not host.lock.acquire(workflow_id)):
            return  # another worker has it and will schedule its next turn
        self._run_locked(loaded)

    def continue_locked(self, instance: WorkflowInstance) -> None:
        """The same turn without its first two steps, for an instance whose lock this thread holds
        and which it has just loaded and saved: an event worker that has resumed a waiting step
        goes on with it here instead of handing it over through the queue."""
        self._instance = instance
        self._run_locked()

    def _run_locked(self, loaded: WorkflowInstance | None = None) -> None:
        host = self._host
        running_host.set(host)  # the schedule step starts its ticks through it
        try:
            if self._instance is None:
                self._load(loaded)
            self._recheck_waits()
            self._run_passes()
        finally:
            host._waiting.release(self._workflow_id)  # and re-announces deliveries that found it busy
        host._controls.end_children(self._orphans)
        self._schedule_next()

    @property
    def instance(self) -> WorkflowInstance:
        assert self._instance is not None, "loaded first"
        return self._instance

    def _load(self, loaded: WorkflowInstance | None) -> None:
        """Load the stored instance (unless loaded with the lock); an unreadable one is quarantined
        (suspended with an error)."""
        if loaded is None:
            loaded = self._host.persistence.get_workflow_instance(self._workflow_id)
        self._instance = loaded
        quarantine_if_unreadable(self._host, self._instance)

    def _recheck_waits(self) -> None:
        """Events published for the waits of a due instance: normally looked up right after its
        subscription is saved; this covers a node that died in between."""
        instance = self._instance
        assert instance is not None, "loaded first"
        if self._is_due(instance, self._host._clock()):
            self._host._delivery.recheck_waits(instance)

    def _run_passes(self) -> None:
        for _ in range(self._host.options.max_passes_per_turn):
            if not self._next_pass():
                return

    def _next_pass(self) -> bool:
        """Run one pass if the instance is ready for one; False ends the turn."""
        host, instance = self._host, self._instance
        assert instance is not None, "loaded first"
        now = host._clock()
        due = (  # _is_due written out: before every pass
            instance.status is WorkflowStatus.RUNNABLE
            and instance.next_execution is not None
            and instance.next_execution <= now
        )
        if not due and not limits.may_take_slot(instance):
            return False
        definition = self._definition  # looked up once per turn, unless the instance moved to another
        wanted_id, wanted_version = instance.workflow_definition_id, instance.version
        if definition is None or definition.id != wanted_id or definition.version != wanted_version:
            definition = self._definition = host.registry.find(wanted_id, wanted_version)
        if definition is None:
            self._suspend_unregistered()
            return False
        control = host._controls.pending(instance, now)
        if control is not None:
            host._controls.apply_recorded(instance, control)  # then a new pass, as it left it
            return True
        if host._waiting.waits_for(instance.id):
            self._yielded = True  # the waiting delivery goes first
            return False
        if definition.concurrency is not None:
            waiting = limits.try_admit(host, instance, definition, now)
            if waiting is not None:
                self._instance = waiting  # queued for a slot (or suspended): saved
                return False
        return self._execute(definition, now)

    def _suspend_unregistered(self) -> None:
        instance = self.instance
        message = (
            f"its definition {instance.workflow_definition_id!r} version {instance.version} "
            "is not registered on this host"
        )
        error_type = "liteflow.core.WorkflowNotRegisteredError"
        self._instance = self._host._suspend_with_error(self._workflow_id, message, error_type)

    def _execute(self, definition: WorkflowDefinition, now: datetime) -> bool:
        """The executor's pass, its sub-workflows, its save, then the events for its new waits."""
        host, instance = self._host, self._instance
        assert instance is not None, "loaded first"
        before, waits = instance.status, child_waits(instance)
        result = host._executor.execute(instance, definition, now)
        for child in result.children:
            self._create_child(child)
        if result.subscriptions and instance.status is WorkflowStatus.RUNNABLE:
            # Saved as due until the events already published are looked up below: if this node
            # dies in between, whoever runs it next looks (recheck_waits).
            instance.next_execution = now
        if not self._save(before, result):
            return False
        for subscription in result.subscriptions:
            host._delivery.deliver_published(instance, subscription)
        if waits:
            self._orphans += children_to_end(instance, waits, definition)
        return True

    def _create_child(self, child: WorkflowInstance) -> None:
        host = self._host
        try:
            host.persistence.create_workflow(child)
        except ConcurrencyError:
            return  # created by an earlier run of the same step attempt
        host._lifecycle.publish(child, LifecycleEventType.WORKFLOW_STARTED, child.create_time)
        host._announce(QueueType.WORKFLOW, child.id, child.priority)

    def _save(self, before: WorkflowStatus, result: PassResult) -> bool:
        """Save the pass; data that cannot be saved suspends the instance instead (False)."""
        host, instance = self._host, self._instance
        assert instance is not None, "loaded first"
        try:
            lend_checked(instance, host.options.max_payload_bytes)  # raises before anything is saved
            try:
                host._save(
                    instance,
                    before,
                    subscriptions=result.subscriptions,
                    errors=result.errors,
                    step_events=result.step_events,
                )
            finally:
                if _lent.data is not _NOTHING:  # the store usually took it (and so forgot it) already
                    forget_lent_data()
        except SerializationError as error:
            message = f"the data left by its steps cannot be saved: {error}"
            error_type = f"liteflow.core.{type(error).__name__}"
            self._instance = host._suspend_with_error(self._workflow_id, message, error_type)
            return False
        return True

    def _schedule_next(self) -> None:
        """Queue the next turn; after yielding, just after the waiting delivery."""
        host = self._host
        if self._yielded:
            retry = (QueueType.WORKFLOW, self._workflow_id, self.instance.priority)
            host._timers.call_later(host.options.lock_retry_delay.total_seconds(), retry)
        else:
            host._schedule(self.instance)

    @staticmethod
    def _is_due(instance: WorkflowInstance, now: datetime) -> bool:
        return (
            instance.status is WorkflowStatus.RUNNABLE
            and instance.next_execution is not None
            and instance.next_execution <= now
        )
