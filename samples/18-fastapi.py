"""A FastAPI app that starts workflows and publishes events without blocking its event loop.

Run as a script, it calls its own endpoints through FastAPI's test client and prints what
happens. Serve it for real with ``uvicorn --app-dir samples 18-fastapi:app`` (pip install fastapi
uvicorn). A retried POST starts nothing new: the order number is the workflow's instance id.
"""

from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from liteflow.core import *


def reserve_stock(context: StepExecutionContext) -> None:
    context.workflow.data["reserved"] = True


def ship(context: StepExecutionContext) -> None:
    data = context.workflow.data
    data["shipped"] = f"{data['item']} paid with {data['payment']}"


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(reserve_stock).wait_for("payment", lambda data, context: context.workflow.id).output(
            "payment", lambda step: step.event_data
        ).then(ship)


host = configure_workflow_host()  # memory here; a store URL ("postgresql://...") in production
host.register_workflow(OrderWorkflow())


@asynccontextmanager
async def lifespan(app: FastAPI):
    host.start()
    yield
    host.stop()


app = FastAPI(lifespan=lifespan)


class NewOrder(BaseModel):
    item: str
    express: bool = False


@app.post("/orders/{number}")
async def create_order(number: int, order: NewOrder) -> dict:
    # Idempotent: a retried request returns the instance the first one started.
    workflow_id = await host.start_workflow_async(
        "OrderWorkflow",
        data={"item": order.item},
        instance_id=f"order-{number}",
        priority=5 if order.express else 0,
    )
    return {"workflow_id": workflow_id}


@app.post("/orders/{number}/payment")
async def pay(number: int, method: str) -> dict:
    event_id = await host.publish_event_async("payment", f"order-{number}", method)
    return {"event_id": event_id}


@app.get("/orders/{number}")
async def order_status(number: int) -> dict:
    try:
        instance = await host.get_workflow_instance_async(f"order-{number}")
    except WorkflowNotFoundError:
        raise HTTPException(status_code=404, detail=f"no order {number}") from None
    return {"status": instance.status.value, "data": instance.data}


@app.get("/orders")
async def open_orders() -> list:
    running = await host.query_workflows_async(status=WorkflowStatus.RUNNABLE, workflow_id="OrderWorkflow")
    return [instance.id for instance in running]


def main() -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # runs the lifespan: the host starts and stops with the app
        first = client.post("/orders/42", json={"item": "teapot", "express": True}).json()
        retried = client.post("/orders/42", json={"item": "a different teapot"}).json()
        print(f"POST /orders/42 twice: {first['workflow_id']} and {retried['workflow_id']}")
        print(f"open orders: {client.get('/orders').json()}")
        client.post("/orders/42/payment", params={"method": "card"})
        host.wait_for_workflow("order-42", timeout=10)
        status = client.get("/orders/42").json()
        print(f"order 42: {status['status']}, {status['data']['shipped']}")
        print(f"GET /orders/7: {client.get('/orders/7').status_code}")


if __name__ == "__main__":
    main()
