"""Run workflows to completion in-process, on a clock the test controls."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

from liteflow.core import (
    ExecutionError,
    LocalLockProvider,
    NotIdleError,
    PersistenceProvider,
    QueueType,
    Workflow,
    WorkflowHost,
    WorkflowInstance,
    WorkflowTimeoutError,
    configure_workflow_host,
)


class ManualClock:
    """A clock that only moves when told to. Call it for the current UTC time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class WorkflowTestHost:
    """A host that runs everything in the calling thread, with time under the test's control.

    Nothing runs in the background: each call below runs all work that is due before it
    returns, so tests are deterministic. Sleeps, delays, retries and timeouts are crossed by
    moving the clock, so a workflow that waits three days finishes in milliseconds::

        test = WorkflowTestHost(OrderWorkflow())
        workflow_id = test.start_workflow("OrderWorkflow", data=Order())
        test.publish_event("paid", "order-1", 42)
        instance = test.run_to_completion(workflow_id)
        assert instance.status is WorkflowInstance.COMPLETE
        assert test.errors(workflow_id) == []
    """

    def __init__(
        self,
        *workflows: Workflow,
        persistence_service: PersistenceProvider | str | None = None,
        start: datetime | None = None,
        persistence: PersistenceProvider | str | None = None,
        **options: Any,
    ) -> None:
        """Registers ``workflows`` on a host whose clock starts at ``start``.

        Args:
            *workflows: The workflows to register.
            persistence_service: The store, as for ``configure_workflow_host`` (memory by default).
            start: The clock's first time (2030-01-01 UTC by default).
            persistence: The former name of ``persistence_service``; deprecated.
            **options: Further host options, as for ``configure_workflow_host``.
        """
        if persistence is not None:
            warnings.warn(
                "WorkflowTestHost(persistence=...) is deprecated: use persistence_service=", DeprecationWarning, 2
            )
            persistence_service = persistence_service or persistence
        self.clock = ManualClock(start)
        # One process, every pass run by the caller: the in-process lock, even on a SQLite file
        # (whose default lock would start a renewal thread that nothing here ever stops).
        self.host: WorkflowHost = configure_workflow_host(
            persistence_service=persistence_service, lock_service=LocalLockProvider(), clock=self.clock, **options
        )
        for workflow in workflows:
            self.host.register_workflow(workflow)

    def start_workflow(
        self,
        workflow_id: str,
        version: int | None = None,
        data: Any = None,
        *,
        reference: str | None = None,
        instance_id: str | None = None,
        priority: int = 0,
    ) -> str:
        """Start a workflow and run it until it waits (for time or an event) or ends (the
        arguments are those of ``WorkflowHost.start_workflow``)."""
        started = self.host.start_workflow(
            workflow_id, version, data, reference=reference, instance_id=instance_id, priority=priority
        )
        self.run_until_idle()
        return started

    def publish_event(self, event_name: str, event_key: Any, event_data: Any = None) -> str:
        event_id = self.host.publish_event(event_name, event_key, event_data)
        self.run_until_idle()
        return event_id

    def publish_user_action(self, key: str, user: str, value: Any) -> bool:
        """Answer a user task (see ``WorkflowHost.publish_user_action``), then run what is due."""
        applied = self.host.publish_user_action(key, user, value)
        self.run_until_idle()
        return applied

    def run_until_idle(self, max_rounds: int = 10_000) -> None:
        """Run everything due at the current time."""
        store, queue = self.host.persistence, self.host.queue
        for _ in range(max_rounds):
            for workflow_id in store.get_runnable_instances(self.clock.now):
                queue.enqueue(QueueType.WORKFLOW, workflow_id)
            for event_id in store.get_runnable_events(self.clock.now):
                queue.enqueue(QueueType.EVENT, event_id)
            if self.host.run_until_idle() == 0:
                return
        raise NotIdleError(f"work was still due after {max_rounds} rounds: a workflow that never settles?")

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta`` in one jump, then run what became due."""
        self.clock.advance(delta)
        self.run_until_idle()

    def run_to_completion(self, workflow_id: str, max_time: timedelta = timedelta(days=365)) -> WorkflowInstance:
        """Move the clock from one due time to the next until the workflow ends.

        Raises WorkflowTimeoutError if it waits for an event nobody publishes, or has not
        ended ``max_time`` from now."""
        deadline = self.clock.now + max_time
        while True:
            self.run_until_idle()
            instance = self.host.get_workflow_instance(workflow_id)
            if instance.is_finished:
                return instance
            due = self._next_due(deadline)
            if due is None:
                raise WorkflowTimeoutError(
                    f"workflow {workflow_id} is {instance.status.value} and nothing is due before "
                    f"{deadline.isoformat()}: is it waiting for an event or suspended?"
                )
            self.clock.now = max(self.clock.now, due)

    def _next_due(self, deadline: datetime) -> datetime | None:
        times = [
            self.host.get_workflow_instance(i).next_execution
            for i in self.host.persistence.get_runnable_instances(deadline)
        ]
        return min((t for t in times if t is not None), default=None)

    def instance(self, workflow_id: str) -> WorkflowInstance:
        return self.host.get_workflow_instance(workflow_id)

    def errors(self, workflow_id: str) -> list[ExecutionError]:
        """The step errors recorded for a workflow, oldest first."""
        return self.host.get_workflow_errors(workflow_id)
