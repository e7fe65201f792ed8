"""Activities: a workflow hands work to an external worker and waits, durably, for the result.

A worker (any process configured with the same store, queue and lock) claims the activity, does
the work and submits the result. A claim is a lease: here the first worker "dies" holding it, and
once its lease lapses the activity is handed to a second worker. A second result for the same
activity is ignored.
"""

from datetime import timedelta

from liteflow.core import *


class Order:
    def __init__(self, order_id, amount):
        self.order_id, self.amount, self.receipt = order_id, amount, None


def say(text):
    return lambda context: print(text.format(data=context.workflow.data))


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(say("order {data.order_id}: charging the card")).activity(
            "charge-card", parameters=lambda data, context: {"order": data.order_id, "amount": data.amount}
        ).output("receipt", lambda step: step.result).then(say("order {data.order_id}: paid, receipt {data.receipt}"))


host = configure_workflow_host()
host.register_workflow(OrderWorkflow())
host.start()
wid = host.start_workflow("OrderWorkflow", 1, Order("A-1", 120))

# Worker 1 claims the activity with a one-second lease... and never answers (it crashed).
lost = host.get_pending_activity("charge-card", "worker-1", timeout=5, lease=timedelta(seconds=1))
print(f"worker-1 claimed {lost.parameters} and died")

# Worker 2 asks too: it gets the same activity once worker 1's lease has lapsed.
claim = host.get_pending_activity("charge-card", "worker-2", timeout=5)
print(f"worker-2 claimed {claim.parameters}")
print(f"worker-2 submits: {host.submit_activity_success(claim.token, 'R-' + claim.parameters['order'])}")

instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value}, receipt {instance.data.receipt}")
print(f"worker-1 comes back and submits: {host.submit_activity_success(lost.token, 'R-late')}")
host.stop()
