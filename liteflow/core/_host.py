"""The workflow host: registers definitions, starts workflows, runs the workers, saves instances.

How the engine works, for whoever changes it, is in docs/architecture.md: the threads, one turn of
a workflow (``_turn``), event delivery and controls, locks and revisions, what is saved when. The
host owns its parts and they call it back through small interfaces: ``_turn.WorkflowTurn`` (one
turn), ``_delivery.EventDelivery`` and ``WaitingDeliveries`` (events and direct results, and the
deliveries waiting for a lock), ``_controls.Controls`` (suspend, resume, terminate).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import Any

from . import _limits as limits
from . import _repair, _starting_workflows
from . import _validation as check
from ._activities import PendingActivity, failure_payload, get_pending_activity, submit_activity_result
from ._async_calls import AsyncCalls
from ._builder import Workflow
from ._controls import ControlAction, Controls
from ._delivery import EventDelivery, WaitingDeliveries
from ._errors import (
    InvalidArgumentError,
    InvalidOperationError,
    WorkflowTimeoutError,
)
from ._executor import PassMiddleware, WorkflowExecutor
from ._health import Health, HealthMonitor
from ._interrupts import Cancellations
from ._lifecycle import Lifecycle, LifecycleCallback, StepEvent, WorkflowMiddleware
from ._models import (
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    WorkflowInstance,
    WorkflowStatus,
    utcnow,
)
from ._options import HostOptions
from ._payload import check_payload
from ._primitives import CHILD_COMPLETED_EVENT
from ._providers import InstanceQuery, LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._registry import WorkflowRegistry
from ._schedules import ScheduleMethods, ScheduleWorkflow
from ._step_limits import step_limits
from ._steps import StepMiddleware
from ._timers import AsyncRunner
from ._turn import WorkflowTurn
from ._user_tasks import UserAction, open_user_actions, publish_user_action
from ._workers import Workers

logger = logging.getLogger("liteflow")

_C_UTCNOW: Callable[[], datetime] = functools.partial(datetime.now, timezone.utc)  # utcnow() without its frame

_RESERVED_PREFIX = "liteflow."


class WorkflowHost(AsyncCalls, ScheduleMethods):
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
        # The options are frozen, so the clock is too: read at every pass and save, without a call
        # around it (the default, utcnow, as the C call it makes).
        self._clock: Callable[[], datetime] = _C_UTCNOW if options.clock is utcnow else options.clock
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
        # Turns running at once: the workflow workers', and those an event worker goes on with after
        # resuming a workflow, which it does only with a slot free (see _continue_turn).
        # A slot is a token taken from this queue (C calls, no lock held in Python: see _gil).
        self._turns: SimpleQueue[None] = SimpleQueue()
        for _ in range(options.max_concurrent_workflows):
            self._turns.put(None)
        self._workers = Workers(self, self._health)
        self._timers = self._workers.timers
        self._waiters: dict[str, list[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self._waiting = WaitingDeliveries(self, self._timers)
        self._controls = Controls(self, self._waiting, self._cancellations)
        self._delivery = EventDelivery(self, self._waiting, self._controls)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads. Work queued before ``start`` runs now."""
        if self._workers.running:
            return
        if self._workers.stopped:
            raise InvalidOperationError("a stopped host cannot be started again; configure a new one")
        self._workers.start()
        logger.info("workflow host started with %d workers", self.options.max_concurrent_workflows)

    def stop(self) -> None:
        """Stop taking work, wait (up to ``stop_timeout``) for running steps, release resources."""
        if not self._workers.running:
            return
        self._workers.stop_taking_work()
        for resource in self._owned:
            if not isinstance(resource, PersistenceProvider):  # the store stays readable after stop
                resource.close()  # wakes workers blocked on the queue at once
        self._workers.join(self.options.stop_timeout)
        self._async.close()
        logger.info("workflow host stopped")

    def __enter__(self) -> WorkflowHost:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def health(self) -> Health:
        """How the host is doing: each provider, and while started each group of threads.

        A provider is not ok from its first failed call (a refused connection, a timeout) until
        one answers again; an idle host still calls its store at every poll, so a store outage
        shows within ``poll_interval``. A worker group is not ok while one of its threads fails
        or is dead; ``live`` is False only while a thread is dead. See the README for wiring it to
        liveness and readiness probes.
        """
        return self._workers.health()

    def poll(self) -> None:
        """Queue everything the store says is due (the workers set timers for what is not yet)."""
        self._workers.poll()

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
        with self._workers.calling("persistence"):
            # A store whose queue lives in its database queues the id in the event's transaction.
            queued = self.persistence.create_event_queued(event, self.queue)
            if not queued:
                self.persistence.create_event(event)
        if queued:
            self._health.succeeded("queue")  # the queue answered inside the store's transaction
        else:
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
        instance = self.persistence.get_workflow_instance(workflow_id)
        if instance.is_finished:
            return instance  # the common case when waiting for many in turn: no waiter to set up
        ended = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(workflow_id, []).append(ended)
        try:
            while True:
                # Read after registering: an end saved before then is seen here, one after sets ``ended``.
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
        self._controls.request(workflow_id, ControlAction.SUSPEND)

    def resume_workflow(self, workflow_id: str) -> None:
        """Resume a suspended workflow (its definition must be registered on this host)."""
        self._controls.request(workflow_id, ControlAction.RESUME)

    def terminate_workflow(self, workflow_id: str) -> None:
        """End a runnable or suspended workflow as terminated (applied after a running step)."""
        self._controls.request(workflow_id, ControlAction.TERMINATE)

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

    # -- saving and queueing -------------------------------------------------------------------

    def _announce(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        """Queue an item whose state the store already holds. If the queue fails, nothing is lost
        (the poll finds the item in the store), so the call that saved it happened and must not
        raise: the queue is reported degraded instead."""
        try:
            _starting_workflows.enqueue(self.queue, queue, item_id, priority)
        except Exception as error:
            self._health.failed("queue", error)
            logger.debug("could not queue %s %s; the poll will: %s", queue.value, item_id, error)
        else:
            self._health.succeeded("queue")

    def _save(
        self,
        instance: WorkflowInstance,
        before: WorkflowStatus,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        step_events: Sequence[tuple[StepEvent, ExecutionPointer]] = (),
    ) -> None:
        """Persist an instance (lock held) and tell everyone who cares what changed."""
        now = self._clock()
        events: list[Event] = []
        finished = instance.status is WorkflowStatus.COMPLETE or instance.status is WorkflowStatus.TERMINATED
        ended = finished and before is not WorkflowStatus.COMPLETE and before is not WorkflowStatus.TERMINATED
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
        # Without the lock when nobody waits (a dict read is atomic): a waiter registering now
        # reads the store after registering, and so sees the end saved above.
        if ended and instance.id in self._waiters:
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
        if self._workers.running:
            raise InvalidOperationError("run_until_idle is for a host that is not started")
        for count in range(max_items):
            for queue, handle in (
                (QueueType.WORKFLOW, self._process_workflow),
                (QueueType.EVENT, self._process_event),
            ):
                item_id = self.queue.dequeue(queue, 0)
                if item_id is not None:
                    self._workers.handle(queue, item_id, handle)
                    break
            else:
                return count
        return max_items

    def _process_workflow(self, workflow_id: str) -> None:
        """One turn of a workflow (see ``_turn`` and docs/architecture.md)."""
        self._turns.get()
        try:
            WorkflowTurn(self, workflow_id).run()
        finally:
            self._turns.put(None)

    def _process_event(self, event_id: str) -> None:
        """An event worker's turn (see ``_delivery``)."""
        self._delivery.process(event_id)

    def _continue_turn(self, instance: WorkflowInstance) -> None:
        """The rest of a turn, for a workflow an event worker has resumed (see ``_delivery``). With
        every slot taken, the workflow is queued instead: it is then the queue's order (priorities)
        that decides what runs next, and no more than ``max_concurrent_workflows`` turns run."""
        try:
            self._turns.get_nowait()
        except Empty:
            self._waiting.release(instance.id)
            self._schedule(instance)
            return
        try:
            WorkflowTurn(self, instance.id).continue_locked(instance)
        finally:
            self._turns.put(None)
