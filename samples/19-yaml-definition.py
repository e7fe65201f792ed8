"""Definitions as data: a workflow written in YAML, loaded with load_workflow and run like any other.

Needs PyYAML (pip install "liteflow-engine[yaml]"). The step types the YAML names are registered with
@register_step; the YAML holds the structure and the expressions that wire data into the steps.
"""

from pathlib import Path

from liteflow.core import *


@register_step
class ValidateOrder(StepBody):
    def __init__(self):
        self.lines = []
        self.total = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.total = round(sum(line["price"] for line in self.lines), 2)
        print(f"validate: {len(self.lines)} lines, total {self.total:.2f}")
        return ExecutionResult.next()


@register_step
class PackLine(StepBody):
    def __init__(self):
        self.line = None

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"pack: {self.line['name']}")
        return ExecutionResult.next()


@register_step
class AddGift(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("gift: a sample of tea")
        return ExecutionResult.next()


@register_step
class Ship(StepBody):
    def __init__(self):
        self.order_id = ""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"ship: {self.order_id}")
        return ExecutionResult.next()


@register_step
class CancelOrder(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("cancel: not paid in time")
        return ExecutionResult.next()


workflow = load_workflow(Path(__file__).with_suffix(".yaml"))
print(workflow_graph(workflow))

host = configure_workflow_host()
host.register_workflow(workflow)
host.start()

order = {
    "order_id": "o-1",
    "lines": [{"name": "cups", "price": 12.5}, {"name": "tea", "price": 6.9}, {"name": "teapot", "price": 44.0}],
}
wid = host.start_workflow("OrderWorkflow", data=order)
host.publish_event("paid", "o-1", 63.4)
instance = host.wait_for_workflow(wid, timeout=10)
print(f"{instance.workflow_definition_id} is {instance.status.value}: paid {instance.data['paid']:.2f}")
host.stop()
