"""Limits per step, across workflows: ``.concurrency(name, limit)`` and ``.rate_limit(name, limit,
per=...)`` on a step. Applied by a step middleware every host installs first.

Concurrency slots are ``limit`` named locks ``liteflow.step-slot:<name>:<n>`` of the lock provider,
held while the step's body runs. A lock lives as long as the process holding it (renewed by it,
lapsing within the lease when it dies, on every lock provider), and a step runs inside one pass on
one process: exactly the life of a step slot, so a crash, an error or a timeout can never leak one.
(Workflow limits are held across passes, by instances, hence kept in the store: see ``_limits``.)

A rate limit is one record in the store per name (a reserved ``liteflow.rate`` instance, stored
suspended): the current fixed window and how many starts it had, counted with revision-checked
saves, so hosts never over-count between them.

A step that finds no slot, or no room in the window, does not run: it sleeps (for a short retry
delay, or until the next window) with its state unchanged, holding no worker, and tries again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ._errors import BuilderError, ConcurrencyError, WorkflowNotFoundError
from ._models import WorkflowInstance, WorkflowStatus
from ._steps import ExecutionResult, StepBody, StepExecutionContext

if TYPE_CHECKING:
    from ._host import WorkflowHost

SLOT_PREFIX = "liteflow.step-slot:"
RATE_WORKFLOW = "liteflow.rate"
SLOT_RETRY = timedelta(milliseconds=100)
"""How soon a step that found every slot taken tries again."""
_ATTEMPTS = 5  # revision conflicts on a rate record before the step waits a little instead
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def check_step_limit(label: str, setting: str, name: Any, limit: Any) -> None:
    if not isinstance(name, str) or not name:
        raise BuilderError(f"{label}: {setting} needs a non-empty name, got {name!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise BuilderError(f"{label}: {setting} limit must be an int of at least 1, got {limit!r}")


class StepLimits:
    """The step middleware that applies both limits (a no-op for steps with neither). A class, so
    the executor can tell it from the user's middleware and skip it for a step without limits."""

    __slots__ = ("_host",)

    def __init__(self, host: WorkflowHost) -> None:
        self._host = host

    def __call__(
        self, context: StepExecutionContext, body: StepBody, next_: Callable[[], ExecutionResult]
    ) -> ExecutionResult:
        host, step = self._host, context.step
        if step.concurrency_limit is None and step.rate_limit is None:
            return next_()
        slot = None
        if step.concurrency_limit is not None:
            slot = _take_slot(host, *step.concurrency_limit)
            if slot is None:
                return ExecutionResult.sleep(SLOT_RETRY, context.persistence_data)
        try:
            if step.rate_limit is not None:
                wait = _take_rate(host, *step.rate_limit)
                if wait is not None:
                    return ExecutionResult.sleep(wait, context.persistence_data)
            return next_()
        finally:
            if slot is not None:
                host.lock.release(slot)


def step_limits(host: WorkflowHost) -> StepLimits:
    """The step middleware that applies both limits (a no-op for steps with neither)."""
    return StepLimits(host)


def _take_slot(host: WorkflowHost, name: str, limit: int) -> str | None:
    first = random.randrange(limit)  # spread the takers over the slots
    for n in range(limit):
        slot = f"{SLOT_PREFIX}{name}:{(first + n) % limit}"
        if host.lock.acquire(slot):
            return slot
    return None


def _take_rate(host: WorkflowHost, name: str, limit: int, per: timedelta) -> timedelta | None:
    """Count one start in the current window; None if it fits, else how long to wait."""
    for _ in range(_ATTEMPTS):
        now = host.options.clock()
        window = (now - _EPOCH) // per
        record = _rate_record(host, name, now)
        counted = record.data if isinstance(record.data, dict) and record.data.get("window") == window else None
        count = 0 if counted is None else int(counted.get("count", 0))
        if count >= limit:
            return _EPOCH + per * (window + 1) - now
        record.data = {"window": window, "count": count + 1}
        try:
            host.persistence.persist_workflow(record)
        except ConcurrencyError:
            continue  # another start counted meanwhile: count again
        return None
    return SLOT_RETRY


def _rate_record(host: WorkflowHost, name: str, now: datetime) -> WorkflowInstance:
    record_id = f"{RATE_WORKFLOW}:{name}"
    try:
        return host.persistence.get_workflow_instance(record_id)
    except WorkflowNotFoundError:
        pass
    fresh = WorkflowInstance(
        id=record_id, workflow_definition_id=RATE_WORKFLOW, version=1, data={"window": None, "count": 0},
        status=WorkflowStatus.SUSPENDED, create_time=now,
    )  # fmt: skip
    try:
        host.persistence.create_workflow(fresh)
    except ConcurrencyError:
        return host.persistence.get_workflow_instance(record_id)
    return fresh
