# requires: host
"""An open "charge-card" activity and a user task assigned to "alice" on the running ``host``,
and ``charge``, the worker's own function. When the page is done, both workflows must have
completed: the page's worker and answer really did their work."""

import time
from dataclasses import dataclass


@dataclass
class Order:
    order_id: str = "order-7"
    total: int = 12
    manager: str = "alice"
    director: str = "bob"
    receipt: object = None
    decided_by: object = None


def charge(order: str, amount: int) -> dict[str, object]:
    return {"order": order, "charged": amount}


class PaymentWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(PlaceOrder)
            .activity("charge-card", parameters=lambda data, context: {"order": data.order_id, "amount": data.total})
            .output("receipt", lambda step: step.result)
            .then(Ship)
        )


class RefundWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(RequestRefund)
            .user_task("Approve the refund?", assigned_to=lambda data, context: data.manager)
            .with_option("yes", "Approve", lambda then: then.start_with(Refund))
            .with_option("no", "Reject", lambda then: then.start_with(Apologise))
            .output("decided_by", lambda step: step.answered_by)
            .then(Close)
        )


host.register_workflow(PaymentWorkflow())
host.register_workflow(RefundWorkflow())
payment_id = host.start_workflow("PaymentWorkflow", data=Order())
refund_id = host.start_workflow("RefundWorkflow", data=Order())
deadline = time.monotonic() + 30
while not host.get_open_user_actions(assigned_to="alice") and time.monotonic() < deadline:
    time.sleep(0.01)  # the host's worker threads reach the task; poll with a deadline


def _both_completed() -> None:
    paid = host.wait_for_workflow(payment_id, timeout=30)
    assert paid.data.receipt == {"order": "order-7", "charged": 12}, paid.data
    refunded = host.wait_for_workflow(refund_id, timeout=30)
    assert refunded.data.decided_by == "alice", refunded.data


teardown.append(_both_completed)
