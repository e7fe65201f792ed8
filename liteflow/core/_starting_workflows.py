"""Starting a workflow: caller-chosen (idempotent) instance ids and queue priorities.

An instance id given by the caller makes a start idempotent: the store's unique key on the id
decides, so of any number of callers racing on one id (threads, processes, hosts) exactly one
creates the instance and every one of them gets its id back. The data of the losers is ignored.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import _validation as check
from ._errors import ConcurrencyError, DuplicateWorkflowError, InvalidArgumentError
from ._gil import let_others_run
from ._lifecycle import LifecycleEventType
from ._models import ExecutionPointer, WorkflowInstance
from ._payload import check_data_payload, lent_data
from ._providers import QueueProvider, QueueType

if TYPE_CHECKING:
    from ._host import WorkflowHost

MAX_INSTANCE_ID_LENGTH = 200
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._:-]+")
_NOT_LENT = object()
MAX_PRIORITY = 1_000_000
"""Priorities range over ``-MAX_PRIORITY..MAX_PRIORITY``; 0 is the default."""


def instance_id(call: str, value: Any) -> str:
    """A caller-chosen instance id: 1 to 200 characters among letters, digits and ``._:-``."""
    if type(value) is not str:
        raise InvalidArgumentError(f"{call}: instance_id must be a str, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_INSTANCE_ID_LENGTH:
        raise InvalidArgumentError(
            f"{call}: instance_id must be 1 to {MAX_INSTANCE_ID_LENGTH} characters long, got {len(value)}"
        )
    if _INSTANCE_ID.fullmatch(value) is None:
        bad = sorted({c for c in value if _INSTANCE_ID.fullmatch(c) is None})
        raise InvalidArgumentError(
            f"{call}: instance_id {value[:40]!r} may only hold letters, digits and '._:-', not {''.join(bad)!r}"
        )
    return value


def priority(call: str, value: Any) -> int:
    """A priority: an int between -1,000,000 and 1,000,000 (higher runs first)."""
    check.integer(call, "priority", value)
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidArgumentError(f"{call}: priority must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, got {value}")
    return int(value)


def enqueue(queue: QueueProvider, queue_type: QueueType, item_id: str, item_priority: int = 0) -> None:
    """Queue an item, passing the priority only when it is not the default, so a third-party
    queue written before priorities (``enqueue(queue, item_id)``) keeps working for the rest."""
    if item_priority:
        queue.enqueue(queue_type, item_id, priority=item_priority)
    else:
        queue.enqueue(queue_type, item_id)


def start_workflow(
    host: WorkflowHost,
    workflow_id: str,
    version: int | None,
    data: Any,
    *,
    reference: str | None,
    instance_id_: str | None,
    priority_: int,
) -> str:
    """What :meth:`WorkflowHost.start_workflow` does; see there."""
    call = "start_workflow"
    check.text(call, "workflow_id", workflow_id)
    check.optional_int(call, "version", version)
    check.optional_text(call, "reference", reference)
    if instance_id_ is not None:
        instance_id(call, instance_id_)
    priority(call, priority_)
    limit = host.options.max_payload_bytes
    checked = None if limit is None else check_data_payload(data, limit)
    definition = host.registry.get(workflow_id, version)
    now = host._clock()
    instance = WorkflowInstance(
        workflow_definition_id=definition.id,
        version=definition.version,
        data=data,
        reference=reference,
        create_time=now,
        next_execution=now,
        execution_pointers=[ExecutionPointer(step_id=definition.start_step)],
        priority=priority_,
    )
    if instance_id_ is not None:
        instance.id = instance_id_
    for middleware in host._lifecycle.middleware:
        middleware.before_start(instance)
    # A middleware may have changed the data: the save then encodes it again.
    lend = limit is not None and not host._lifecycle.middleware
    try:
        with host._workers.calling("persistence"), lent_data(data if lend else _NOT_LENT, checked):
            # A store whose queue lives in its database queues the id in the create's transaction.
            queued = host.persistence.create_workflow_queued(instance, host.queue)
            if not queued:
                host.persistence.create_workflow(instance)
    except ConcurrencyError:
        if instance_id_ is None:
            raise  # a random id collided: not something to hide
        return _existing(host, instance)
    host._lifecycle.publish(instance, LifecycleEventType.WORKFLOW_STARTED, now)
    if queued:
        host._health.succeeded("queue")  # the queue answered inside the store's transaction
    else:
        host._announce(QueueType.WORKFLOW, instance.id, instance.priority)
    let_others_run()  # a caller starting many in a row, holding no lock now (see _gil)
    return instance.id


def _existing(host: WorkflowHost, wanted: WorkflowInstance) -> str:
    """The id of the instance that won the race for ``wanted.id``, if it is of the same definition."""
    with host._workers.calling("persistence"):
        stored = host.persistence.get_workflow_instance(wanted.id)
    if stored.workflow_definition_id != wanted.workflow_definition_id:
        raise DuplicateWorkflowError(
            f"start_workflow: instance id {wanted.id!r} is taken by a workflow of definition "
            f"{stored.workflow_definition_id!r}, not {wanted.workflow_definition_id!r}"
        )
    return stored.id
