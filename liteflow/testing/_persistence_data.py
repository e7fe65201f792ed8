"""Data and helpers the persistence contract suite builds its tests from (also handy for a
provider's own tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from liteflow.core import (
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PersistenceProvider,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
    register_type,
)
from liteflow.core._models import new_id
from liteflow.core._providers import InstanceQuery

# Fixed times keep the tests deterministic; microseconds check that nothing is truncated.
T0 = datetime(2024, 5, 17, 12, 0, 0, 123456, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)


# Registered under a fixed name so it round-trips even when liteflow is installed in site-packages,
# where unregistered plain classes are refused.
@register_type(name="liteflow.testing.ContractData")
class ContractData:
    """A plain (non-dataclass) class stored inside workflow data by the round-trip tests."""

    def __init__(self, name: str, amount: int, tags: list[str]) -> None:
        self.name = name
        self.amount = amount
        self.tags = tags

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContractData) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"ContractData({vars(self)!r})"


def rich_data() -> dict[str, Any]:
    return {
        "text": "héllo",
        "number": 42,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "nested": [[1, 2], [3, [4, {"deep": "yes"}]]],
        "when": datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
        "object": ContractData("widget", 7, ["a", "b"]),
    }


def make_pointer(**overrides: Any) -> ExecutionPointer:
    """A pointer with every field set to a non-default value."""
    fields: dict[str, Any] = dict(
        step_id=3,
        active=False,
        status=PointerStatus.WAITING_FOR_EVENT,
        sleep_until=T0 + 30 * SECOND,
        persistence_data={"iteration": 2, "values": [1, 2, 3]},
        start_time=T0 - SECOND,
        end_time=T0,
        event_name="order-paid",
        event_key="order-17",
        event_published=True,
        event_id=new_id(),
        event_data={"amount": 12.5, "paid_at": T0},
        context_item=ContractData("item", 1, []),
        predecessor_id=new_id(),
        outcome="approved",
        retry_count=2,
        children=[new_id(), new_id()],
        scope=[new_id()],
    )
    fields.update(overrides)
    return ExecutionPointer(**fields)


def make_instance(**overrides: Any) -> WorkflowInstance:
    fields: dict[str, Any] = dict(
        workflow_definition_id="contract-workflow",
        version=1,
        data={"counter": 0},
        reference="ref-1",
        status=WorkflowStatus.RUNNABLE,
        next_execution=T0,
        create_time=T0 - 60 * SECOND,
        execution_pointers=[ExecutionPointer(step_id=0)],
    )
    fields.update(overrides)
    return WorkflowInstance(**fields)


def make_subscription(instance: WorkflowInstance, name: str, key: str, as_of: datetime) -> EventSubscription:
    pointer = instance.execution_pointers[0]
    return EventSubscription(
        workflow_id=instance.id,
        step_id=pointer.step_id,
        execution_pointer_id=pointer.id,
        event_name=name,
        event_key=key,
        subscribe_as_of=as_of,
    )


def make_error(instance: WorkflowInstance, attempt: int) -> ExecutionError:
    return ExecutionError(
        workflow_id=instance.id,
        execution_pointer_id=instance.execution_pointers[0].id,
        step_id=0,
        message=f"boom {attempt}",
        error_type="ValueError",
        traceback="Traceback (most recent call last):\n  ...\nValueError: boom",
        attempt=attempt,
        error_time=T0 + attempt * SECOND,
    )


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(index)`` in ``count`` threads; re-raise the first failure."""
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            target(index)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "worker threads did not finish"
    if failures:
        raise failures[0]


def query_ids(persistence: PersistenceProvider, **fields: Any) -> list[str]:
    return [instance.id for instance in persistence.query_instances(InstanceQuery(**fields))]


def _aware(value: datetime | None) -> bool:
    return value is None or value.utcoffset() is not None
