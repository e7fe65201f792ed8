"""A concurrency limit per key: one payment at a time per customer; the others wait, queued,
without holding a worker, and start in order as the running one ends."""

from datetime import timedelta

from liteflow.core import *
from liteflow.testing import WorkflowTestHost


class Pay(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        data = context.workflow.data
        print(f"paying {data['order']} for customer {data['customer']}")


class PaymentWorkflow(Workflow):
    def concurrency(self):
        return Concurrency(limit=1, key=lambda data: data["customer"])

    def build(self, builder: WorkflowBuilder):
        builder.start_with(Pay).wait_for("settled", lambda data, context: data["order"]).then(
            lambda context: print(f"settled {context.workflow.data['order']}")
        )


test = WorkflowTestHost(PaymentWorkflow())
orders = {}
for order, customer in [("A-1", "alice"), ("A-2", "alice"), ("B-1", "bob"), ("A-3", "alice")]:
    test.clock.advance(timedelta(seconds=1))  # start order decides who goes next
    orders[order] = test.start_workflow("PaymentWorkflow", data={"order": order, "customer": customer})


def show():
    states = {o: "queued" if test.instance(i).queued else test.instance(i).status.value for o, i in orders.items()}
    print("  ", states)


show()
for order in ("A-1", "A-2", "B-1", "A-3"):
    test.publish_event("settled", order)
    show()
