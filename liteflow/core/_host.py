"""The workflow host: registers definitions, starts workflows, delivers events, runs the workers.

Order of work for one workflow (the part that keeps the engine correct, see docs/architecture.md):
lock it, load it, run a pass, create any sub-workflows, save it with its new subscriptions, errors
and outgoing events in one write, look for events already published for the new subscriptions,
release the lock, then schedule the next turn. Event delivery and control requests live in
``_delivery`` (the host's base class).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from . import _limits as limits
from . import _repair, _starting_workflows
from . import _validation as check
from ._activities import PendingActivity, failure_payload, get_pending_activity, submit_activity_result
from ._async_calls import AsyncCalls
from ._builder import Workflow
from ._children import child_waits, children_to_end, end_children
from ._errors import (
    ConcurrencyError,
    InvalidArgumentError,
    InvalidOperationError,
    SerializationError,
    WorkflowTimeoutError,
)
from ._executor import PassMiddleware, WorkflowExecutor
from ._health import HealthMonitor
from ._interrupts import Cancellations
from ._lifecycle import Lifecycle, LifecycleCallback, LifecycleEventType, WorkflowMiddleware
from ._models import (
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    WorkflowInstance,
    WorkflowStatus,
)
from ._options import HostOptions
from ._payload import check_payload, checked_payload
from ._primitives import CHILD_COMPLETED_EVENT
from ._providers import InstanceQuery, LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._registry import WorkflowRegistry
from ._schedules import ScheduleMethods, ScheduleWorkflow, running_host
from ._step_limits import step_limits
from ._steps import StepMiddleware
from ._timers import AsyncRunner, TimerQueue
from ._user_tasks import UserAction, open_user_actions, publish_user_action
from ._workers import HostWorkers

logger = logging.getLogger("liteflow")

_RESERVED_PREFIX = "liteflow."


class WorkflowHost(AsyncCalls, HostWorkers, ScheduleMethods):
    """Executes workflows. Create one with :func:`configure_workflow_host`."""

    def __init__(
        self,
        persistence: PersistenceProvider,
        queue: QueueProvider,
        lock: LockProvider,
        options: HostOptions,
        owned: tuple[Any, ...] = (),
    ) -> None:
        super().__init__()
        self.persistence = persistence
        self.queue = queue
        self.lock = lock
        self.options = options
        self.registry = WorkflowRegistry()
        self.registry.register(ScheduleWorkflow())  # every host runs schedules (see _schedules)
        self._owned = owned
        self._async = AsyncRunner()
        self._step_middleware: list[StepMiddleware] = [step_limits(self)]  # limits first: see _step_limits
        self._pass_middleware: list[PassMiddleware] = []
        self._lifecycle = Lifecycle()
        self._cancellations = Cancellations()
        self._executor = WorkflowExecutor(
            retry_interval=options.retry_interval,
            default_error_behavior=options.default_error_behavior,
            run_awaitable=self._async.run,
            find_definition=self.registry.find,
            step_middleware=self._step_middleware,
            pass_middleware=self._pass_middleware,
            cancellations=self._cancellations,
        )
        self._health = HealthMonitor()
        self._timers: TimerQueue[tuple[QueueType, str, int]] = TimerQueue(
            self._fire_timer, on_error=self._timer_failed, on_success=self._timer_succeeded
        )
        self._threads: list[threading.Thread] = []
        self._targets: dict[str, Callable[[], None]] = {}
        self._deaths: dict[str, BaseException] = {}
        self._supervisor: threading.Thread | None = None
        self._wake_supervisor = threading.Event()
        self._running = False
        self._stopping = threading.Event()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        # Events whose delivery found their workflow busy: retried as soon as it is released here.

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
            self._targets[name] = target
            self._threads.append(self._spawn(name))
        self._supervisor = threading.Thread(target=self._supervise, name="liteflow-supervisor", daemon=True)
        self._supervisor.start()
        logger.info("workflow host started with %d workers", self.options.max_concurrent_workflows)

    def stop(self) -> None:
        """Stop taking work, wait (up to ``stop_timeout``) for running steps, release resources."""
        if not self._running:
            return
        self._running = False
        self._stopping.set()
        self._wake_supervisor.set()
        if self._supervisor is not None:
            self._supervisor.join()  # it no longer replaces threads, so the list below is final
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- registration and extension points ---------------------------------------------------

    def register_workflow(self, workflow: Workflow) -> None:
        """Make a workflow definition known to this host (by its id and version)."""
        self.registry.register(workflow)

    def on_lifecycle_event(self, callback: LifecycleCallback) -> None:
        """Call ``callback(LifecycleEvent)`` for every workflow and step event on this host, after
        the change it reports is saved. Callbacks run on worker threads: keep them quick."""
        self._lifecycle.subscribe(callback)

    def use_step_middleware(self, middleware: StepMiddleware) -> None:
        """Wrap every step: ``middleware(context, body, next_)`` must return ``next_()``'s result."""
        self._step_middleware.append(middleware)

    def use_workflow_middleware(self, middleware: WorkflowMiddleware) -> None:
        self._lifecycle.middleware.append(middleware)

    def use_pass_middleware(self, middleware: PassMiddleware) -> None:
        """Wrap every execution pass: ``middleware(instance, next_)`` must return ``next_()``'s
        result. A pass runs the awake steps of one instance between two saves (tracing uses it)."""
        self._pass_middleware.append(middleware)

    # -- starting, events, queries -----------------------------------------------------------

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
        """Start an instance of a registered workflow and return its id. The instance is stored
        before this returns.

        Args:
            workflow_id: The definition to start.
            version: The version to start; None starts the latest registered one.
            data: The instance's data object.
            reference: A free-form reference to find the instance by (``query_workflows``).
            instance_id: The instance's id, chosen by the caller (1-200 characters among letters,
                digits and ``._:-``) to make the start idempotent: if an instance with this id
                exists, none is started and its id is returned (``data`` is then ignored), also
                when several hosts race. None picks a random id.
            priority: Higher runs first while the workers are saturated (-1,000,000 to
                1,000,000); kept by every later turn of the instance and given to its
                sub-workflows. See the README for how each queue honours it.

        Raises:
            DuplicateWorkflowError: ``instance_id`` is taken by an instance of another definition.
            InvalidArgumentError: An argument has the wrong type or value.
            WorkflowNotRegisteredError: No such definition (and version) is registered.
        """
        return _starting_workflows.start_workflow(
            self, workflow_id, version, data, reference=reference, instance_id_=instance_id, priority_=priority
        )

    def publish_event(
        self, event_name: str, event_key: Any, event_data: Any = None, effective_date: datetime | None = None
    ) -> str:
        """Publish an event to every workflow waiting for (``event_name``, ``event_key``) and to
        those that will wait for it later (see the README on event matching). Returns its id."""
        if not isinstance(event_name, str) or not event_name:
            raise InvalidArgumentError(f"publish_event needs a non-empty event name, got {event_name!r}")
        if event_name.startswith(_RESERVED_PREFIX):
            raise InvalidArgumentError(f"event names starting with {_RESERVED_PREFIX!r} are reserved for LiteFlow")
        if event_key is None:
            raise InvalidArgumentError(f"publish_event({event_name!r}) needs an event key, got None")
        check.aware_datetime("publish_event", "effective_date", effective_date)
        check_payload(event_data, self.options.max_payload_bytes, "event data")
        event = Event(event_name, str(event_key), event_data, event_time=effective_date or self._clock())
        for middleware in self._lifecycle.middleware:
            middleware.before_publish(event)
        return self._publish(event)

    def _publish(self, event: Event) -> str:
        with self._calling("persistence"):
            self.persistence.create_event(event)
        self._announce(QueueType.EVENT, event.id)
        return event.id

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        """The stored state of an instance; raises WorkflowNotFoundError for an unknown id."""
        check.text("get_workflow_instance", "workflow_id", workflow_id)
        return self.persistence.get_workflow_instance(workflow_id)

    def get_workflow_errors(self, workflow_id: str) -> list[ExecutionError]:
        """Every step error recorded for an instance, oldest first."""
        check.text("get_workflow_errors", "workflow_id", workflow_id)
        self.persistence.get_workflow_instance(workflow_id)
        return self.persistence.get_errors(workflow_id)

    def query_workflows(
        self,
        *,
        status: WorkflowStatus | None = None,
        definition_id: str | None = None,
        reference: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        workflow_id: str | None = None,
    ) -> list[WorkflowInstance]:
        """Instances matching every given filter, oldest first, one page of ``limit`` at ``offset``.

        Args:
            status: Only instances in this status.
            definition_id: Only instances of this workflow definition (the id given to
                ``start_workflow``).
            reference: Only instances started with this reference.
            created_from: Only instances created at or after this time.
            created_to: Only instances created before this time.
            limit: At most this many instances.
            offset: Skip this many matching instances first.
            workflow_id: The former name of ``definition_id``; deprecated.
        """
        call = "query_workflows"
        status = check.status(call, "status", status)
        if workflow_id is not None:
            warnings.warn("query_workflows(workflow_id=...) is deprecated: use definition_id=", DeprecationWarning, 2)
            check.optional_text(call, "workflow_id", workflow_id)
            definition_id = definition_id or workflow_id
        check.optional_text(call, "definition_id", definition_id)
        check.optional_text(call, "reference", reference)
        check.aware_datetime(call, "created_from", created_from)
        check.aware_datetime(call, "created_to", created_to)
        check.integer(call, "limit", limit)
        check.integer(call, "offset", offset)
        return self.persistence.query_instances(
            InstanceQuery(
                status=status,
                workflow_definition_id=definition_id,
                reference=reference,
                created_from=created_from,
                created_to=created_to,
                limit=limit,
                offset=offset,
            )
        )

    def wait_for_workflow(self, workflow_id: str, timeout: float | timedelta | None = None) -> WorkflowInstance:
        """Block until the instance is complete or terminated and return it.

        Raises WorkflowTimeoutError after ``timeout`` seconds (None waits forever)."""
        check.text("wait_for_workflow", "workflow_id", workflow_id)
        timeout = check.timeout("wait_for_workflow", "timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(workflow_id, []).append(ended)
        try:
            while True:
                instance = self.persistence.get_workflow_instance(workflow_id)
                if instance.is_finished:
                    return instance
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WorkflowTimeoutError(
                        f"workflow {workflow_id} is still {instance.status.value} after {timeout} s"
                    )
                # An end on this node sets the event at once; the cap covers ends on other nodes.
                ended.wait(1.0 if remaining is None else min(remaining, 1.0))
        finally:
            with self._waiters_lock:
                waiting = self._waiters.get(workflow_id, [])
                if ended in waiting:
                    waiting.remove(ended)
                if not waiting:
                    self._waiters.pop(workflow_id, None)

    async def wait_for_workflow_async(
        self, workflow_id: str, timeout: float | timedelta | None = None
    ) -> WorkflowInstance:
        """:meth:`wait_for_workflow` for asyncio code: awaits without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_workflow, workflow_id, timeout)

    def purge(
        self,
        status: WorkflowStatus | Sequence[WorkflowStatus] = (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED),
        older_than: timedelta | datetime = timedelta(days=7),
    ) -> int:
        """Delete finished instances (and processed events) older than ``older_than`` (an age or a
        point in time) from the store. Returns how many instances were removed."""
        statuses = check.statuses("purge", "status", status)
        older_than = check.age_or_time("purge", "older_than", older_than)
        if WorkflowStatus.RUNNABLE in statuses:
            raise InvalidArgumentError("purge removes finished or suspended workflows, not runnable ones")
        cutoff = self._clock() - older_than if isinstance(older_than, timedelta) else older_than
        return self.persistence.purge(statuses=statuses, older_than=cutoff)

    # -- activities (see _activities) --------------------------------------------------------

    def get_pending_activity(
        self, activity_name: str, worker_id: str, timeout: float = 0, *, lease: timedelta = timedelta(minutes=5)
    ) -> PendingActivity | None:
        """Claim an activity waiting for a worker, waiting up to ``timeout`` seconds for one; None
        if there is none. The claim is a lease: if no result arrives within ``lease``, the activity
        is handed out again (the worker may have died)."""
        return get_pending_activity(self, activity_name, worker_id, timeout, lease)

    def submit_activity_success(self, token: str, result: Any = None) -> bool:
        """Complete a claimed activity with ``result``. Returns False, ignoring the result, if the
        activity no longer waits for one (a result was applied already, or it timed out)."""
        return submit_activity_result(self, token, {"ok": True, "result": result})

    def submit_activity_failure(self, token: str, error: BaseException | str) -> bool:
        """Fail a claimed activity: its step fails with ActivityError and its error behaviour
        applies. Returns False, as :meth:`submit_activity_success` does."""
        return submit_activity_result(self, token, failure_payload(error))

    # -- user tasks (see _user_tasks) ---------------------------------------------------------

    def get_open_user_actions(self, instance_id: str | None = None, assigned_to: str | None = None) -> list[UserAction]:
        """User tasks waiting for an answer: all of them, those of one instance, or those assigned
        to one user."""
        return open_user_actions(self, instance_id, assigned_to)

    def publish_user_action(self, key: str, user: str, value: Any) -> bool:
        """Answer the user task ``key`` as ``user`` with the option ``value``. Raises
        UserActionError if the task is assigned to someone else or has no such option; returns
        False if it no longer waits for an answer (answered already, or its workflow ended)."""
        return publish_user_action(self, key, user, value)

    # -- controls ----------------------------------------------------------------------------

    def suspend_workflow(self, workflow_id: str) -> None:
        """Suspend a runnable workflow. While one of its steps runs, the request is recorded and
        applied when the step returns."""
        self._control(workflow_id, "suspend")

    def resume_workflow(self, workflow_id: str) -> None:
        """Resume a suspended workflow (its definition must be registered on this host)."""
        self._control(workflow_id, "resume")

    def terminate_workflow(self, workflow_id: str) -> None:
        """End a runnable or suspended workflow as terminated (applied after a running step)."""
        self._control(workflow_id, "terminate")

    # -- repair (liteflow/core/_repair.py) -----------------------------------------------------

    def retry_workflow(self, workflow_id: str, from_step: int | str | None = None, *, compensate: bool = False) -> None:
        """Run a suspended or terminated workflow again.

        Args:
            workflow_id: The instance to retry.
            from_step: None to run again what stopped it (its failed steps, with a fresh set of
                attempts, or the steps a termination ended); or a step (its number, ``name``,
                builder ``id`` or class name) that ran before: its latest run and everything that
                followed from it are dropped, without compensation, and it starts afresh.
            compensate: With ``from_step``, first run the compensation (``compensate_with``) of
                each dropped step that completed, latest first.

        Raises:
            WorkflowNotFoundError: No instance has this id.
            InvalidOperationError: The workflow is runnable or complete, or busy on another host, or
                the step never ran in it.
            InvalidArgumentError: The definition has no such step.
            WorkflowNotRegisteredError: A step is named, but the definition is not registered here.
        """
        _repair.retry_workflow(self, workflow_id, from_step, compensate=compensate)

    def fork_workflow(self, workflow_id: str, from_step: int | str | None = None) -> str:
        """Start a new instance with a copy of a workflow's data; the original is left as it is.

        Args:
            workflow_id: The instance to copy (in any status).
            from_step: The top-level step the copy starts at (as for :meth:`retry_workflow`);
                None starts at the beginning.

        Returns:
            The id of the new instance.
        """
        return _repair.fork_workflow(self, workflow_id, from_step)

    # -- saving --------------------------------------------------------------------------------

    def _save(
        self,
        instance: WorkflowInstance,
        before: WorkflowStatus,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        step_events: Sequence[tuple[str, ExecutionPointer]] = (),
    ) -> None:
        """Persist an instance (lock held) and tell everyone who cares what changed."""
        now = self._clock()
        events: list[Event] = []
        ended = instance.is_finished and before not in (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED)
        if ended and instance.parent_workflow_id is not None:
            outcome = {"status": instance.status.value, "data": instance.data}
            events.append(Event(CHILD_COMPLETED_EVENT, instance.id, outcome, event_time=now))
        self.persistence.persist_workflow(
            instance,
            subscriptions=subscriptions,
            terminated_subscriptions=terminated_subscriptions,
            errors=errors,
            events=events,
        )
        for event in events:
            self._announce(QueueType.EVENT, event.id)
        if before is WorkflowStatus.RUNNABLE and instance.status is not WorkflowStatus.RUNNABLE:
            limits.release(self, instance)
        self._lifecycle.after_save(instance, before, now, step_events, errors)
        if ended:
            with self._waiters_lock:
                for waiter in self._waiters.get(instance.id, ()):
                    waiter.set()

    def _suspend_with_error(self, workflow_id: str, message: str, error_type: str) -> WorkflowInstance:
        """Suspend the stored instance with the reason recorded, rather than retrying a failure
        that will not go away by itself. Lock held."""
        logger.error("workflow %s suspended: %s", workflow_id, message)
        instance = self.persistence.get_workflow_instance(workflow_id)
        pointer = next((p for p in instance.execution_pointers if p.active), None)
        before = instance.status
        instance.status, instance.next_execution = WorkflowStatus.SUSPENDED, None
        failure = ExecutionError(
            workflow_id=workflow_id,
            execution_pointer_id=pointer.id if pointer else "",
            step_id=pointer.step_id if pointer else -1,
            message=f"workflow suspended: {message}",
            error_type=error_type,
            error_time=self._clock(),
        )
        self._save(instance, before, errors=[failure])
        return instance

    # -- workers -----------------------------------------------------------------------------

    def _fire_timer(self, item: tuple[QueueType, str, int]) -> None:
        _starting_workflows.enqueue(self.queue, *item)

    def _schedule(self, instance: WorkflowInstance) -> None:
        if instance.status is not WorkflowStatus.RUNNABLE or instance.next_execution is None:
            return
        delay = (instance.next_execution - self._clock()).total_seconds()
        if delay <= 0:
            self._announce(QueueType.WORKFLOW, instance.id, instance.priority)
        else:
            self._timers.call_later(delay, (QueueType.WORKFLOW, instance.id, instance.priority))

    def run_until_idle(self, max_items: int = 1_000_000) -> int:
        """Process queued work in the calling thread until both queues are empty; for tests and
        scripts with a host that was not started. Returns the number of items processed."""
        if self._running:
            raise InvalidOperationError("run_until_idle is for a host that is not started")
        for count in range(max_items):
            for queue, handle in ((QueueType.WORKFLOW, self._process_workflow), (QueueType.EVENT, self._process_event)):
                item_id = self.queue.dequeue(queue, 0)
                if item_id is not None:
                    self._handle(queue, item_id, handle)
                    break
            else:
                return count
        return max_items

    def _process_workflow(self, workflow_id: str) -> None:
        running_host.set(self)
        if not self.lock.acquire(workflow_id):
            return  # another worker has it and will schedule its next turn
        yielded = False
        orphans: list[str] = []
        try:
            instance = self.persistence.get_workflow_instance(workflow_id)
            self._quarantine_if_unreadable(instance)
            if self._is_due(instance):
                self._recheck_waits(instance)
            for _ in range(self.options.max_passes_per_turn):
                now = self._clock()
                if not self._is_due(instance, now) and not limits.may_take_slot(instance):
                    break
                definition = self.registry.find(instance.workflow_definition_id, instance.version)
                if definition is None:
                    message = (
                        f"its definition {instance.workflow_definition_id!r} version {instance.version} "
                        "is not registered on this host"
                    )
                    instance = self._suspend_with_error(
                        workflow_id, message, "liteflow.core.WorkflowNotRegisteredError"
                    )
                    break
                control = self._pending_control(workflow_id, instance, now)
                if control is not None:
                    self._apply_control_event(instance, control)
                    continue
                with self._blocked_lock:
                    if self._blocked.get(workflow_id):
                        yielded = True  # an event delivery or control request waits for the lock
                        break
                if definition.concurrency is not None:
                    waiting = limits.try_admit(self, instance, definition, now)
                    if waiting is not None:
                        instance = waiting  # queued for a slot (or suspended): saved
                        break
                before, waits = instance.status, child_waits(instance)
                result = self._executor.execute(instance, definition, now)
                for child in result.children:
                    self._create_child(child)
                if result.subscriptions and instance.status is WorkflowStatus.RUNNABLE:
                    # Saved as due until the events already published are looked up below: if
                    # this node dies in between, whoever runs it next looks (_recheck_waits).
                    instance.next_execution = now
                try:
                    with checked_payload(instance, self.options.max_payload_bytes):
                        self._save(
                            instance,
                            before,
                            subscriptions=result.subscriptions,
                            errors=result.errors,
                            step_events=result.step_events,
                        )
                except SerializationError as error:
                    message = f"the data left by its steps cannot be saved: {error}"
                    error_type = f"liteflow.core.{type(error).__name__}"
                    instance = self._suspend_with_error(workflow_id, message, error_type)
                    break
                for subscription in result.subscriptions:
                    self._deliver_published(instance, subscription)
                orphans += children_to_end(instance, waits, definition)
        finally:
            self._release(workflow_id)
        end_children(self, orphans)
        if yielded:  # the waiting delivery goes first; come back just after it
            retry = (QueueType.WORKFLOW, workflow_id, instance.priority)
            self._timers.call_later(self.options.lock_retry_delay.total_seconds(), retry)
        else:
            self._schedule(instance)

    def _is_due(self, instance: WorkflowInstance, now: datetime | None = None) -> bool:
        return (
            instance.status is WorkflowStatus.RUNNABLE
            and instance.next_execution is not None
            and instance.next_execution <= (now or self._clock())
        )

    def _create_child(self, child: WorkflowInstance) -> None:
        try:
            self.persistence.create_workflow(child)
        except ConcurrencyError:
            return  # created by an earlier run of the same step attempt
        self._lifecycle.publish(child, LifecycleEventType.WORKFLOW_STARTED, child.create_time)
        self._announce(QueueType.WORKFLOW, child.id, child.priority)
