# requires: host
"""A FastAPI ``app`` and its ``NewOrder`` body.

When the page is done, the endpoint a block added is called through FastAPI's test client, twice,
on a fresh running ``host`` (``OrderWorkflow`` registered): both calls answer the same instance id
(the start is idempotent)."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

app = FastAPI()


class NewOrder(BaseModel):
    item: str


def _post_an_order_twice() -> None:
    global host
    page_host, (host, _) = host, start_docs_host()
    try:
        client = TestClient(app)
        answers = [client.post("/orders/7", json={"item": "book"}).json() for _ in range(2)]
        assert answers == [{"workflow_id": "order-7"}] * 2, answers
    finally:
        host.stop()
        host = page_host


teardown.append(_post_an_order_twice)
