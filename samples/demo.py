"""LiteFlow demo: an order goes through a workflow, from validation to shipping.

Run it with `make demo`, or `python3 samples/demo.py [--store URL]`.
"""
import argparse
import sys
import threading
import time
from dataclasses import dataclass

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


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder\
            .start_with(Validate)\
                .input('items', lambda data, context: data.items)\
                .output('total', lambda step: step.total)\
            .if_(lambda data, context: data.total >= 50)\
                .do(lambda then:\
                    then.start_with(ApplyDiscount)\
                        .input('total', lambda data, context: data.total)\
                        .output('discount', lambda step: step.discount))\
            .then(lambda context: say("payment: waiting for the customer..."))\
            .wait_for('payment', lambda data, context: data.order_id)\
                .output('paid', lambda step: step.event_data)\
            .for_each(lambda data, context: sorted(data.items))\
                .do(lambda each:\
                    each.start_with(Pack))\
            .then(Ship)\
                .input('order_id', lambda data, context: data.order_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="memory://", help="persistence URL (default: %(default)s)")
    args = parser.parse_args()

    with configure_workflow_host(persistence_service=args.store) as host:
        host.register_workflow(OrderWorkflow())
        say(f"host started, store {args.store}")
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
        print(f"  total    {data.total:.2f}\n  discount {data.discount:.2f}\n  paid     {data.paid:.2f}")


if __name__ == "__main__":
    main()
