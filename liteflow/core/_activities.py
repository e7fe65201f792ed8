"""Activities: steps that hand work to external workers and wait, durably, for the result.

Built only on the existing provider contracts, so they work the same on every store, queue and
lock, across a cluster:

- A waiting activity is an event subscription with the reserved name ``liteflow.direct.activity``
  and the activity's name as key, so ``get_subscriptions`` finds the open activities of one name
  from the store's (name, key) index.
- A claim is a lease written to the store, not held by the claimer: the claim is recorded in the
  pointer's persistence data (worker, claim number, expiry) and the pointer's subscription is
  replaced, in the same revision-checked save, by one whose ``subscribe_as_of`` is the lease's
  expiry. ``get_subscriptions(..., now)`` only returns subscriptions that began at or before now, so
  a claimed activity is invisible to other workers until its lease lapses, and then it is handed out
  again, whether or not the claimer is still alive. A lock-provider lease would not do: it is
  renewed by the process holding it, and a worker may be a remote process that makes two calls and
  never renews anything.
- A result is a direct result (see ``_delivery``): stored as an event, applied under the
  workflow's lock if the step still waits for that attempt. The first result wins; a second one
  (the same worker retrying, or a slow worker whose lease lapsed) finds the step no longer waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._errors import ActivityError, ConcurrencyError, InvalidArgumentError, WorkflowNotFoundError
from ._failures import type_name
from ._models import EventSubscription, PointerStatus, WorkflowStatus
from ._primitives import DIRECT_WAIT_PREFIX, awaits_result
from ._steps import ExecutionResult, StepBody, StepExecutionContext

if TYPE_CHECKING:
    from ._host import WorkflowHost

ACTIVITY_WAIT = DIRECT_WAIT_PREFIX + "activity"
_POLL_SECONDS = 0.2  # how often a waiting get_pending_activity looks at the store again


@dataclass(frozen=True)
class PendingActivity:
    """An activity claimed by a worker: do the work, then submit its result with ``token``."""

    token: str
    activity_name: str
    parameters: Any
    workflow_id: str
    lease_expires: datetime
    """After this the activity may be handed to another worker; a result is still accepted until
    one has been applied."""


class Activity(StepBody):
    """Waits until a worker submits the activity's result; ``result`` is then what it submitted."""

    def __init__(self) -> None:
        self.activity_name = ""
        self.parameters: Any = None
        self.result: Any = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        pointer = context.execution_pointer
        answer = pointer.event_data if pointer.event_published else None
        # A result of an earlier attempt (before a retry) does not count: this attempt waits afresh.
        if isinstance(answer, dict) and answer.get("attempt") == pointer.retry_count:
            if not answer["ok"]:
                raise ActivityError(
                    f"activity {self.activity_name!r} failed: {answer['error']}",
                    workflow_id=context.workflow.id,
                    step=context.step.id,
                )
            self.result = answer["result"]
            return ExecutionResult.next()
        state = {"parameters": self.parameters, "attempt": pointer.retry_count, "claims": 0}
        return ExecutionResult(event_name=ACTIVITY_WAIT, event_key=self.activity_name, persistence_data=state)


def _token(workflow_id: str, pointer_id: str, attempt: int, claim: int) -> str:
    return f"{workflow_id}:{pointer_id}:{attempt}:{claim}"


def _parse_token(token: Any) -> tuple[str, str, int, int]:
    parts = token.rsplit(":", 3) if isinstance(token, str) else []
    if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
        raise InvalidArgumentError(f"not an activity token: {token!r}")
    return parts[0], parts[1], int(parts[2]), int(parts[3])


def get_pending_activity(
    host: WorkflowHost, activity_name: str, worker_id: str, timeout: float, lease: timedelta
) -> PendingActivity | None:
    """Claim an open activity named ``activity_name``, waiting up to ``timeout`` seconds for one."""
    if not isinstance(activity_name, str) or not activity_name:
        raise InvalidArgumentError(f"get_pending_activity needs an activity name, got {activity_name!r}")
    if not isinstance(worker_id, str) or not worker_id:
        raise InvalidArgumentError(f"get_pending_activity needs a worker id, got {worker_id!r}")
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise InvalidArgumentError(f"lease must be a positive timedelta, got {lease!r}")
    if not isinstance(timeout, int | float) or timeout < 0:
        raise InvalidArgumentError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    while True:
        for subscription in host.persistence.get_subscriptions(ACTIVITY_WAIT, activity_name, host.options.clock()):
            claimed = _claim(host, subscription, worker_id, lease)
            if claimed is not None:
                return claimed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(_POLL_SECONDS, remaining))


def _claim(
    host: WorkflowHost, subscription: EventSubscription, worker_id: str, lease: timedelta
) -> PendingActivity | None:
    workflow_id = subscription.workflow_id
    if not host.lock.acquire(workflow_id):
        return None  # busy: try the next one, and this one on the next call
    try:
        instance = host.persistence.get_workflow_instance(workflow_id)
        pointer = instance.pointer(subscription.execution_pointer_id)
        state = pointer.persistence_data if pointer is not None else None
        now = host.options.clock()
        stale = (
            instance.is_finished
            or pointer is None
            or pointer.status is not PointerStatus.WAITING_FOR_EVENT
            or pointer.event_name != ACTIVITY_WAIT
            or not isinstance(state, dict)
            # Another subscription of the same pointer (an earlier attempt's) was claimed already.
            or ("expires" in state and state["expires"] > now)
        )
        if stale:
            host._save(instance, instance.status, terminated_subscriptions=[subscription.id])
            return None
        if instance.status is not WorkflowStatus.RUNNABLE:
            return None  # a suspended workflow's activities wait until it is resumed
        assert pointer is not None and isinstance(state, dict)
        claim, expires = state["claims"] + 1, now + lease
        pointer.persistence_data = {**state, "claims": claim, "worker": worker_id, "expires": expires}
        claimed = EventSubscription(
            workflow_id=workflow_id,
            step_id=pointer.step_id,
            execution_pointer_id=pointer.id,
            event_name=ACTIVITY_WAIT,
            event_key=subscription.event_key,
            subscribe_as_of=expires,  # invisible to get_pending_activity until the lease lapses
        )
        host._save(instance, instance.status, subscriptions=[claimed], terminated_subscriptions=[subscription.id])
    except (WorkflowNotFoundError, ConcurrencyError):
        return None
    finally:
        host._waiting.release(workflow_id)
    return PendingActivity(
        token=_token(workflow_id, pointer.id, state["attempt"], claim),
        activity_name=subscription.event_key,
        parameters=state["parameters"],
        workflow_id=workflow_id,
        lease_expires=expires,
    )


def submit_activity_result(host: WorkflowHost, token: str, payload: dict[str, Any]) -> bool:
    """Record a worker's result. False if the activity no longer waits for it (already resolved,
    timed out, or its workflow ended): the result is then ignored."""
    workflow_id, pointer_id, attempt, claim = _parse_token(token)
    instance = host.persistence.get_workflow_instance(workflow_id)
    pointer = instance.pointer(pointer_id)
    if pointer is None:
        if instance.compacted is not None:
            return False  # a loop's round that ended and was folded away (``_compaction``)
        raise InvalidArgumentError(f"token {token!r} names no step of workflow {workflow_id}")
    if instance.is_finished or not awaits_result(pointer, ACTIVITY_WAIT, attempt):
        return False
    state = pointer.persistence_data
    if not isinstance(state, dict) or not 1 <= claim <= state.get("claims", 0):
        raise InvalidArgumentError(f"token {token!r} was never handed out")
    host._delivery.submit_direct(workflow_id, pointer_id, ACTIVITY_WAIT, attempt, {**payload, "attempt": attempt})
    return True


def failure_payload(error: BaseException | str) -> dict[str, Any]:
    if isinstance(error, BaseException):
        return {"ok": False, "error": f"{type_name(error)}: {error}"}
    if not isinstance(error, str):
        raise InvalidArgumentError(f"submit_activity_failure needs an exception or a message, got {error!r}")
    return {"ok": False, "error": error}
