"""LiteFlow demo: an order goes through a workflow, from validation to shipping, then waits for
its delivery confirmation in a SQLite file until the next run.

Run it with `make demo` (twice), or `python3 samples/demo.py [--store URL]`.
"""

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from liteflow.core import *

STARTED = time.monotonic()
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:  # steps print from the host's worker threads
        sys.stdout.write(f"[{time.monotonic() - STARTED:5.2f}s] {message}\n")
        sys.stdout.flush()


@dataclass
class Order:
    order_id: str
    items: dict[str, float]
    total: float = 0.0
    discount: float = 0.0
    paid: float = 0.0


class Validate(StepBody):
    def __init__(self):
        self.items = {}
        self.total = 0.0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if not self.items:
            raise ValueError("an order needs at least one item")
        self.total = round(sum(self.items.values()), 2)
        say(f"validate: {len(self.items)} items, total {self.total:.2f}")
        return ExecutionResult.next()


class ApplyDiscount(StepBody):
    def __init__(self):
        self.total = 0.0
        self.discount = 0.0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.discount = round(self.total * 0.10, 2)
        say(f"discount: big order, 10% off = {self.discount:.2f}")
        return ExecutionResult.next()


class Pack(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        say(f"pack: {context.execution_pointer.context_item} is in a box")
        return ExecutionResult.next()


class Ship(StepBody):
    def __init__(self):
        self.order_id = ""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        say(f"ship: order {self.order_id} is on its way")
        return ExecutionResult.next()


@dataclass
class Delivery:
    parcel: str
    dispatched: str = ""  # by the run that starts the workflow; the others by the next run
    delivered: str = ""
    signed_by: str = ""


def stamp(step) -> str:
    return f"{datetime.now():%H:%M:%S} by process {os.getpid()}"


class DeliveryWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(
            lambda context: say(f"dispatch: parcel {context.workflow.data.parcel} is with the courier")
        ).output("dispatched", stamp).wait_for("delivered", lambda data, context: data.parcel).output(
            "signed_by", lambda step: step.event_data
        ).then(lambda context: say(f"delivered: parcel {context.workflow.data.parcel} arrived")).output(
            "delivered", stamp
        )


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Validate).input("items", lambda data, context: data.items).output(
            "total", lambda step: step.total
        ).if_(lambda data, context: data.total >= 50).do(
            lambda then: (
                then.start_with(ApplyDiscount)
                .input("total", lambda data, context: data.total)
                .output("discount", lambda step: step.discount)
            )
        ).then(lambda context: say("payment: waiting for the customer...")).wait_for(
            "payment", lambda data, context: data.order_id
        ).output("paid", lambda step: step.event_data).for_each(lambda data, context: sorted(data.items)).do(
            lambda each: each.start_with(Pack)
        ).then(Ship).input("order_id", lambda data, context: data.order_id)


def place_order(host: WorkflowHost) -> None:
    order = Order("A-1001", {"teapot": 35.0, "cups": 18.5, "tea": 9.9})
    wid = host.start_workflow("OrderWorkflow", 1, order)
    say(f"order {order.order_id} placed: workflow {wid}")

    time.sleep(0.3)  # the customer takes a moment to pay
    so_far = host.get_workflow_instance(wid).data
    due = round(so_far.total - so_far.discount, 2)
    say(f"customer pays {due:.2f}: publish_event('payment', {order.order_id!r}, {due})")
    host.publish_event("payment", order.order_id, due)

    instance = host.wait_for_workflow(wid, timeout=10)
    elapsed = (instance.complete_time - instance.create_time).total_seconds()
    say(f"workflow {instance.status.value} in {elapsed:.2f}s, {len(instance.execution_pointers)} steps run")
    data = instance.data
    print(f"\n  order    {data.order_id}\n  items    {', '.join(data.items)}")
    print(f"  total    {data.total:.2f}\n  discount {data.discount:.2f}\n  paid     {data.paid:.2f}\n")


def waiting_delivery(host: WorkflowHost, marker: str) -> str | None:
    """The delivery workflow an earlier run left waiting in this store, if there is one."""
    try:
        with open(marker) as file:
            instance = host.get_workflow_instance(file.read().strip())
    except (OSError, WorkflowNotFoundError):
        return None
    if instance.is_finished:
        return None
    say(
        f"found delivery workflow {instance.id} in the store: parcel {instance.data.parcel}, "
        f"dispatched {instance.data.dispatched}, waiting for its confirmation"
    )
    return instance.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///liteflow-demo.db", help="persistence URL (default: %(default)s)")
    args = parser.parse_args()
    # A SQLite file keeps workflows between runs; the id of the one left waiting is kept next to it.
    path = args.store.partition("sqlite:///")[2].partition("?")[0]
    marker = f"{path}.last" if path and path != ":memory:" else None

    with configure_workflow_host(persistence_service=args.store) as host:
        host.register_workflow(OrderWorkflow())
        host.register_workflow(DeliveryWorkflow())
        say(f"host started, store {args.store}")
        waiting = waiting_delivery(host, marker) if marker else None
        place_order(host)
        if marker is None:
            say("(this store forgets everything on exit: a sqlite:/// file lets a workflow wait between runs)")
        elif waiting is None:
            wid = host.start_workflow("DeliveryWorkflow", 1, Delivery(parcel=f"P-{time.time_ns() % 10**6:06d}"))
            with open(marker, "w") as file:
                file.write(wid)
            for _ in range(500):  # let it reach its wait_for before the host stops
                if host.get_workflow_instance(wid).data.dispatched:
                    break
                time.sleep(0.01)
            say(
                "an order is waiting for its delivery confirmation; "
                "run `make demo` again to see it resume from the database"
            )
        else:
            parcel = host.get_workflow_instance(waiting).data.parcel
            say(f"courier confirms: publish_event('delivered', {parcel!r}, 'R. Lee')")
            host.publish_event("delivered", parcel, "R. Lee")
            data = host.wait_for_workflow(waiting, timeout=10).data
            print(f"\n  parcel     {data.parcel}\n  dispatched {data.dispatched}")
            print(f"  delivered  {data.delivered}, signed by {data.signed_by}\n")
            os.remove(marker)


if __name__ == "__main__":
    main()
