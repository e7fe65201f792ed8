"""User tasks: a workflow waits for a person to choose an option; unanswered, it escalates.

The manager is asked to approve a refund; if nobody answers within two seconds (hours, in real
life), the task goes to the director. People see what waits for them with
get_open_user_actions and answer with publish_user_action.
"""

import time
from datetime import timedelta

from liteflow.core import *


class Refund:
    def __init__(self, order_id, manager):
        self.order_id, self.manager, self.decided_by = order_id, manager, None


def say(text):
    return lambda context: print(text.format(data=context.workflow.data))


class RefundWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.user_task("Approve the refund?", assigned_to=lambda data, context: data.manager).with_option(
            "yes", "Approve", lambda then: then.start_with(say("{data.order_id}: refunded"))
        ).with_option("no", "Reject", lambda then: then.start_with(say("{data.order_id}: rejected"))).with_escalation(
            after=timedelta(seconds=2), new_assignee="director"
        ).output("decided_by", lambda step: step.answered_by).then(say("{data.order_id}: closed by {data.decided_by}"))


def open_for(user):
    return host.get_open_user_actions(assigned_to=user)


host = configure_workflow_host()
host.register_workflow(RefundWorkflow())
host.start()
first = host.start_workflow("RefundWorkflow", 1, Refund("order-1", "alice"))
second = host.start_workflow("RefundWorkflow", 1, Refund("order-2", "alice"))

deadline = time.monotonic() + 5
while len(open_for("alice")) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
for action in open_for("alice"):
    print(f"alice sees: {action.prompt} {action.options}")

mine = next(a for a in open_for("alice") if a.workflow_id == first)
try:
    host.publish_user_action(mine.key, "bob", "yes")
except UserActionError as error:
    print(f"bob cannot answer: {error}")
host.publish_user_action(mine.key, "alice", "no")
host.wait_for_workflow(first, timeout=5)

# Nobody answers order-2: after two seconds it is the director's.
while not open_for("director") and time.monotonic() < deadline + 5:
    time.sleep(0.05)
[escalated] = open_for("director")
print(f"escalated to {escalated.assigned_to}: {escalated.escalated}")
host.publish_user_action(escalated.key, "director", "yes")
instance = host.wait_for_workflow(second, timeout=5)
print(f"Workflow is {instance.status.value}, decided by {instance.data.decided_by}")
host.stop()
