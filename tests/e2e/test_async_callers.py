"""The host's async calls keep an event loop free, and the FastAPI sample works through them."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from liteflow.core import (
    MemoryPersistenceProvider,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    configure_workflow_host,
)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "18-fastapi.py"


class SlowStore(MemoryPersistenceProvider):
    """A store whose writes wait until the test lets them through (as a slow database would)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.proceed = threading.Event()

    def create_workflow(self, instance: WorkflowInstance) -> None:
        self.entered.set()
        assert self.proceed.wait(10), "the test never let the write through"
        super().create_workflow(instance)

    def create_event(self, event: Any) -> None:
        self.entered.set()
        assert self.proceed.wait(10), "the test never let the write through"
        super().create_event(event)


def noop(context: StepExecutionContext) -> None:
    pass


class Order(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(noop).wait_for("paid", lambda d, c: c.workflow.id)


@pytest.mark.parametrize("call", ["start", "publish"])
def test_an_awaited_call_leaves_the_loop_free_while_the_store_is_slow(call: str) -> None:
    store = SlowStore()
    host = configure_workflow_host(store)
    host.register_workflow(Order())

    async def scenario() -> str:
        if call == "start":
            pending = asyncio.ensure_future(host.start_workflow_async("Order", data={}, instance_id="o-1"))
        else:
            pending = asyncio.ensure_future(host.publish_event_async("paid", "o-1", {"amount": 3}))
        # This coroutine runs while the call is blocked in the store: the loop is not.
        entered = await asyncio.to_thread(store.entered.wait, 10)
        assert entered and not pending.done()
        store.proceed.set()
        return await pending

    result = asyncio.run(asyncio.wait_for(scenario(), 20))
    if call == "start":
        assert result == "o-1"


def test_async_reads_return_what_the_sync_ones_do() -> None:
    host = configure_workflow_host()
    host.register_workflow(Order())

    async def scenario() -> tuple[WorkflowInstance, list[WorkflowInstance], WorkflowInstance]:
        workflow_id = await host.start_workflow_async("Order", data={"n": 1}, reference="r", priority=3)
        await asyncio.to_thread(host.run_until_idle)
        instance = await host.get_workflow_instance_async(workflow_id)
        runnable = await host.query_workflows_async(status=WorkflowStatus.RUNNABLE, reference="r")
        await host.publish_event_async("paid", workflow_id)
        await asyncio.to_thread(host.run_until_idle)
        return instance, runnable, await host.get_workflow_instance_async(workflow_id)

    instance, runnable, done = asyncio.run(scenario())
    assert instance.data == {"n": 1} and instance.priority == 3
    assert [i.id for i in runnable] == [instance.id]
    assert done.status is WorkflowStatus.COMPLETE


def _load_sample() -> ModuleType:
    pytest.importorskip("fastapi")
    spec = importlib.util.spec_from_file_location("fastapi_sample", SAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_fastapi_sample_starts_once_publishes_and_reports() -> None:
    from fastapi.testclient import TestClient

    sample = _load_sample()
    with TestClient(sample.app) as client:
        first = client.post("/orders/7", json={"item": "cups", "express": True})
        again = client.post("/orders/7", json={"item": "plates"})
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json() == {"workflow_id": "order-7"}
        assert client.get("/orders").json() == ["order-7"]
        assert client.post("/orders/7/payment", params={"method": "cash"}).status_code == 200
        sample.host.wait_for_workflow("order-7", timeout=10)
        status = client.get("/orders/7").json()
        assert status["status"] == "complete"
        assert status["data"]["shipped"] == "cups paid with cash"
        assert sample.host.get_workflow_instance("order-7").priority == 5
        assert client.get("/orders/8").status_code == 404
