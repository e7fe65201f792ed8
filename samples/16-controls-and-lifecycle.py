"""Controls and observation: two orders are started; one is suspended, kept from running past its
delay and resumed, the other is terminated. A lifecycle callback prints what happens to each
workflow, a step middleware times every step, and query_workflows finds instances by status."""

import time
from datetime import timedelta

from liteflow.core import *


class Prepare(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        time.sleep(0.02)
        print(f"prepare {context.workflow.reference}")


class Ship(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"ship {context.workflow.reference}")


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Prepare).delay(lambda data, context: timedelta(milliseconds=200)).then(Ship)


def print_event(event: LifecycleEvent):
    if event.type.value.startswith("workflow_"):  # step_started and step_completed are left out
        print(f"  event: {event.type.value} ({event.reference})")


def timing(context: StepExecutionContext, body: StepBody, next_):
    started = time.perf_counter()
    result = next_()
    took = (time.perf_counter() - started) * 1000
    print(f"  {context.step.body_name} of {context.workflow.reference} took {took:.0f} ms")
    return result


host = configure_workflow_host()
host.register_workflow(OrderWorkflow())
host.on_lifecycle_event(print_event)
host.use_step_middleware(timing)
host.start()

first = host.start_workflow("OrderWorkflow", reference="order-1")
second = host.start_workflow("OrderWorkflow", reference="order-2")
time.sleep(0.1)  # both are in their delay now

host.suspend_workflow(first)
host.terminate_workflow(second)
suspended = host.query_workflows(status=WorkflowStatus.SUSPENDED)
print(f"suspended: {[instance.reference for instance in suspended]}")

time.sleep(0.3)  # the delay is over, but a suspended workflow does not run
print(f"order-1 is still {host.get_workflow_instance(first).status.value}")
host.resume_workflow(first)
host.wait_for_workflow(first, timeout=5)

for instance in host.query_workflows(definition_id="OrderWorkflow"):
    print(f"{instance.reference}: {instance.status.value}")
host.stop()
