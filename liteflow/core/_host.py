"""The workflow host: registers definitions, starts workflows, delivers events, runs the workers.

Order of work for one workflow (the part that keeps the engine correct, see DESIGN-NOTES):
lock it, load it, run a pass, save it with its new subscriptions and errors in one write, look for
events already published for the new subscriptions, release the lock, then schedule the next turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from ._builder import Workflow, WorkflowBuilder
from ._errors import (
    DuplicateWorkflowError,
    SerializationError,
    InvalidArgumentError,
    InvalidOperationError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowTimeoutError,
)
from ._executor import WorkflowExecutor
from ._models import (
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
)
from ._options import HostOptions
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._steps import WorkflowDefinition
from ._timers import AsyncRunner, TimerQueue

logger = logging.getLogger("liteflow")

_EVENT_LOCK_PREFIX = "event:"


class WorkflowRegistry:
    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], tuple[type[Workflow], WorkflowDefinition]] = {}
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()

    def register(self, workflow: Workflow) -> WorkflowDefinition:
        if not isinstance(workflow, Workflow):
            raise InvalidArgumentError(f"register_workflow needs a Workflow instance, got {workflow!r}")
        workflow_id, version = workflow.id(), workflow.version()
        if not isinstance(workflow_id, str) or not workflow_id:
            raise InvalidArgumentError(f"{type(workflow).__name__}.id() must return a non-empty str")
        if not isinstance(version, int):
            raise InvalidArgumentError(f"{type(workflow).__name__}.version() must return an int")
        builder = WorkflowBuilder()
        workflow.build(builder)
        definition = builder.build(workflow_id, version)
        with self._lock:
            known = self._definitions.get((workflow_id, version))
            if known is not None:
                if known[0] is type(workflow):
                    return known[1]
                raise DuplicateWorkflowError(
                    f"workflow {workflow_id!r} version {version} is already registered by "
                    f"{known[0].__qualname__}; give {type(workflow).__qualname__} another id or version"
                )
            self._definitions[(workflow_id, version)] = (type(workflow), definition)
            self._latest[workflow_id] = max(version, self._latest.get(workflow_id, version))
        return definition

    def find(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition | None:
        if version is None:
            version = self._latest.get(workflow_id)
            if version is None:
                return None
        known = self._definitions.get((workflow_id, version))
        return None if known is None else known[1]

    def get(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition:
        definition = self.find(workflow_id, version)
        if definition is None:
            versions = sorted(v for (i, v) in self._definitions if i == workflow_id)
            known = f"registered versions: {versions}" if versions else "no version is registered"
            wanted = "" if version is None else f" version {version}"
            raise WorkflowNotRegisteredError(f"workflow {workflow_id!r}{wanted} is not registered ({known})")
        return definition


class WorkflowHost:
    """Executes workflows. Create one with :func:`configure_workflow_host`."""

    def __init__(
        self,
        persistence: PersistenceProvider,
        queue: QueueProvider,
        lock: LockProvider,
        options: HostOptions,
        owned: tuple[Any, ...] = (),
    ) -> None:
        self.persistence = persistence
        self.queue = queue
        self.lock = lock
        self.options = options
        self.registry = WorkflowRegistry()
        self._owned = owned
        self._clock = options.clock
        self._async = AsyncRunner()
        self._executor = WorkflowExecutor(retry_interval=options.retry_interval, run_awaitable=self._async.run)
        self._timers: TimerQueue[tuple[QueueType, str]] = TimerQueue(self._fire_timer)
        self._threads: list[threading.Thread] = []
        self._running = False
        self._stopping = threading.Event()
        self._finished = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads. Work queued before ``start`` runs now."""
        if self._running:
            return
        if self._stopping.is_set():
            raise InvalidOperationError("a stopped host cannot be started again; configure a new one")
        self._running = True
        self._timers.start()
        workers: list[tuple[str, Callable[[], None]]] = [
            (f"liteflow-workflow-{n}", self._workflow_worker) for n in range(self.options.max_concurrent_workflows)
        ]
        workers += [(f"liteflow-event-{n}", self._event_worker) for n in range(self.options.event_workers)]
        workers.append(("liteflow-poller", self._poller))
        for name, target in workers:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("workflow host started with %d workers", self.options.max_concurrent_workflows)

    def stop(self) -> None:
        """Stop taking work, wait (up to ``stop_timeout``) for running steps, release resources."""
        if not self._running:
            return
        self._running = False
        self._stopping.set()
        for resource in self._owned:
            if not isinstance(resource, PersistenceProvider):  # the store stays readable after stop
                resource.close()  # wakes workers blocked on the queue at once
        deadline = time.monotonic() + self.options.stop_timeout.total_seconds()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            logger.warning("host stopped while steps were still running in %s", ", ".join(stuck))
        self._threads.clear()
        self._timers.stop()
        self._async.close()
        logger.info("workflow host stopped")

    def __enter__(self) -> WorkflowHost:
        self.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()

    # -- public API --------------------------------------------------------------------------

    def register_workflow(self, workflow: Workflow) -> None:
        """Make a workflow definition known to this host (by its id and version)."""
        self.registry.register(workflow)

    def start_workflow(
        self, workflow_id: str, version: int | None = None, data: Any = None, *, reference: str | None = None
    ) -> str:
        """Start an instance of a registered workflow and return its id. ``version=None`` starts the
        latest registered version. The instance is stored before this returns."""
        definition = self.registry.get(workflow_id, version)
        now = self._clock()
        instance = WorkflowInstance(
            workflow_definition_id=definition.id,
            version=definition.version,
            data=data,
            reference=reference,
            create_time=now,
            next_execution=now,
            execution_pointers=[ExecutionPointer(step_id=0)],
        )
        self.persistence.create_workflow(instance)
        self.queue.enqueue(QueueType.WORKFLOW, instance.id)
        return instance.id

    def publish_event(
        self, event_name: str, event_key: Any, event_data: Any = None, effective_date: datetime | None = None
    ) -> str:
        """Publish an event to every workflow waiting for (``event_name``, ``event_key``) and to
        those that will wait for it later (see the README on event matching). Returns its id."""
        if not isinstance(event_name, str) or not event_name:
            raise InvalidArgumentError(f"publish_event needs a non-empty event name, got {event_name!r}")
        if event_key is None:
            raise InvalidArgumentError(f"publish_event({event_name!r}) needs an event key, got None")
        if effective_date is not None and effective_date.tzinfo is None:
            raise InvalidArgumentError("effective_date must be timezone-aware (for example UTC)")
        event = Event(
            event_name=event_name,
            event_key=str(event_key),
            event_data=event_data,
            event_time=effective_date or self._clock(),
        )
        self.persistence.create_event(event)
        self.queue.enqueue(QueueType.EVENT, event.id)
        return event.id

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        """The stored state of an instance; raises WorkflowNotFoundError for an unknown id."""
        return self.persistence.get_workflow_instance(workflow_id)

    def get_workflow_errors(self, workflow_id: str) -> list[ExecutionError]:
        """Every step error recorded for an instance, oldest first."""
        self.persistence.get_workflow_instance(workflow_id)
        return self.persistence.get_errors(workflow_id)

    def wait_for_workflow(self, workflow_id: str, timeout: float | timedelta | None = None) -> WorkflowInstance:
        """Block until the instance is complete or terminated and return it.

        Raises WorkflowTimeoutError after ``timeout`` seconds (None waits forever)."""
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._finished:
                instance = self.persistence.get_workflow_instance(workflow_id)
                if instance.is_finished:
                    return instance
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WorkflowTimeoutError(
                        f"workflow {workflow_id} is still {instance.status.value} after {timeout} s"
                    )
                # Completions on this node notify at once; the cap covers those on other nodes.
                self._finished.wait(1.0 if remaining is None else min(remaining, 1.0))

    # -- workers -----------------------------------------------------------------------------

    def _fire_timer(self, item: tuple[QueueType, str]) -> None:
        self.queue.enqueue(*item)

    def _schedule(self, instance: WorkflowInstance) -> None:
        if instance.status is not WorkflowStatus.RUNNABLE or instance.next_execution is None:
            return
        delay = (instance.next_execution - self._clock()).total_seconds()
        if delay <= 0:
            self.queue.enqueue(QueueType.WORKFLOW, instance.id)
        else:
            self._timers.call_later(delay, (QueueType.WORKFLOW, instance.id))

    def _consume(self, queue: QueueType, handle: Callable[[str], None]) -> None:
        idle = self.options.idle_timeout.total_seconds()
        while self._running:
            item_id = self.queue.dequeue(queue, idle)
            if item_id is None:
                continue
            try:
                handle(item_id)
            except Exception:
                logger.exception("failed to process %s %s; the poller will retry it", queue.value, item_id)
            finally:
                self.queue.acknowledge(queue, item_id)

    def _workflow_worker(self) -> None:
        self._consume(QueueType.WORKFLOW, self._process_workflow)

    def _event_worker(self) -> None:
        self._consume(QueueType.EVENT, self._process_event)

    def _poller(self) -> None:
        interval = self.options.poll_interval.total_seconds()
        while not self._stopping.is_set():
            try:
                # Look one interval ahead: the workers set a timer for anything not yet due.
                horizon = self._clock() + self.options.poll_interval
                for workflow_id in self.persistence.get_runnable_instances(horizon):
                    self.queue.enqueue(QueueType.WORKFLOW, workflow_id)
                for event_id in self.persistence.get_runnable_events(self._clock()):
                    self.queue.enqueue(QueueType.EVENT, event_id)
            except Exception:
                logger.exception("polling the store for runnable work failed")
            self._stopping.wait(interval)

    def _process_workflow(self, workflow_id: str) -> None:
        if not self.lock.acquire(workflow_id):
            return  # another worker has it and will schedule its next turn
        try:
            instance = self.persistence.get_workflow_instance(workflow_id)
            for _ in range(self.options.max_passes_per_turn):
                now = self._clock()
                if (
                    instance.status is not WorkflowStatus.RUNNABLE
                    or instance.next_execution is None
                    or instance.next_execution > now
                ):
                    break
                definition = self.registry.find(instance.workflow_definition_id, instance.version)
                if definition is None:
                    logger.error(
                        "workflow %s needs definition %s version %s, which this host has not registered",
                        workflow_id,
                        instance.workflow_definition_id,
                        instance.version,
                    )
                    return
                result = self._executor.execute(instance, definition, now)
                try:
                    self.persistence.persist_workflow(
                        instance, subscriptions=result.subscriptions, errors=result.errors
                    )
                except SerializationError as error:
                    instance = self._suspend_unsaveable(workflow_id, error)
                    break
                for subscription in result.subscriptions:
                    self._deliver_published(instance, subscription)
                if instance.is_finished:
                    with self._finished:
                        self._finished.notify_all()
        finally:
            self.lock.release(workflow_id)
        self._schedule(instance)

    def _suspend_unsaveable(self, workflow_id: str, error: SerializationError) -> WorkflowInstance:
        """A step left data that cannot be stored: keep the last good state, suspended, with the
        reason recorded, rather than retrying the same failure forever. Lock held."""
        logger.error("workflow %s suspended: its data can no longer be saved: %s", workflow_id, error)
        instance = self.persistence.get_workflow_instance(workflow_id)
        pointer = next((p for p in instance.execution_pointers if p.active), None)
        instance.status = WorkflowStatus.SUSPENDED
        instance.next_execution = None
        failure = ExecutionError(
            workflow_id=workflow_id,
            execution_pointer_id=pointer.id if pointer else "",
            step_id=pointer.step_id if pointer else -1,
            message=f"workflow suspended: the data left by its steps cannot be saved: {error}",
            error_type=f"{type(error).__module__}.{type(error).__qualname__}",
            error_time=self._clock(),
        )
        self.persistence.persist_workflow(instance, errors=[failure])
        return instance

    def purge(
        self,
        status: WorkflowStatus | Sequence[WorkflowStatus] = (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED),
        older_than: timedelta | datetime = timedelta(days=7),
    ) -> int:
        """Delete finished instances (and processed events) older than ``older_than`` (an age or a
        point in time) from the store. Returns how many instances were removed."""
        statuses = [status] if isinstance(status, WorkflowStatus) else list(status)
        if WorkflowStatus.RUNNABLE in statuses:
            raise InvalidArgumentError("purge removes finished or suspended workflows, not runnable ones")
        cutoff = self._clock() - older_than if isinstance(older_than, timedelta) else older_than
        return self.persistence.purge(statuses=statuses, older_than=cutoff)

    def _deliver_published(self, instance: WorkflowInstance, subscription: EventSubscription) -> None:
        """Hand a new subscription the oldest event this instance has not consumed yet: this is
        what delivers an event published before the workflow reached its wait. Lock held."""
        consumed = {p.event_id for p in instance.execution_pointers if p.event_id}
        events = self.persistence.get_events(subscription.event_name, subscription.event_key, subscription.subscribe_as_of)
        for event in events:
            if event.id not in consumed:
                self._apply_event(instance, subscription, event)
                return

    def _apply_event(self, instance: WorkflowInstance, subscription: EventSubscription, event: Event) -> None:
        pointer = instance.pointer(subscription.execution_pointer_id)
        assert pointer is not None
        pointer.event_id = event.id
        pointer.event_data = event.event_data
        pointer.event_published = True
        pointer.active = True
        pointer.status = PointerStatus.PENDING
        if instance.status is WorkflowStatus.RUNNABLE:
            instance.next_execution = self._clock()
        self.persistence.persist_workflow(instance, terminated_subscriptions=[subscription.id])

    def _process_event(self, event_id: str) -> None:
        lock_name = _EVENT_LOCK_PREFIX + event_id
        if not self.lock.acquire(lock_name):
            return
        try:
            event = self.persistence.get_event(event_id)
            if event.is_processed:
                return
            subscriptions = self.persistence.get_subscriptions(event.event_name, event.event_key, event.event_time)
            delivered = all([self._deliver_to(subscription, event) for subscription in subscriptions])
            if delivered:
                self.persistence.mark_event_processed(event_id)
            else:
                self._timers.call_later(self.options.lock_retry_delay.total_seconds(), (QueueType.EVENT, event_id))
        finally:
            self.lock.release(lock_name)

    def _deliver_to(self, subscription: EventSubscription, event: Event) -> bool:
        """Deliver to one subscription; False when its workflow is busy and this must be retried."""
        if not self.lock.acquire(subscription.workflow_id):
            return False
        try:
            instance = self.persistence.get_workflow_instance(subscription.workflow_id)
            pointer = instance.pointer(subscription.execution_pointer_id)
            if pointer is None or pointer.event_published or instance.is_finished:
                self.persistence.persist_workflow(instance, terminated_subscriptions=[subscription.id])
                return True
            # Older events still being fanned out go first, so a waiting step sees events in order.
            consumed = {p.event_id for p in instance.execution_pointers if p.event_id}
            candidates = self.persistence.get_events(
                subscription.event_name, subscription.event_key, subscription.subscribe_as_of
            )
            chosen = next(
                (c for c in candidates if c.id == event.id or (not c.is_processed and c.id not in consumed)), event
            )
            self._apply_event(instance, subscription, chosen)
        except WorkflowNotFoundError:
            return True  # purged meanwhile
        finally:
            self.lock.release(subscription.workflow_id)
        self._schedule(instance)
        return True
