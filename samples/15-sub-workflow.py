"""Sub-workflows: a parent starts a registered child workflow with data mapped in, waits for it to
end, and maps its final data back."""

from liteflow.core import *


class Quote(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        data = context.workflow.data
        data.price = data.weight * 4 + 5
        print(f"child: {data.weight} kg to {data.country} costs {data.price}")


class ShippingQuote:
    def __init__(self, weight, country):
        self.weight = weight
        self.country = country
        self.price = 0


class QuoteWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Quote)


class Order:
    def __init__(self):
        self.weight = 3
        self.country = "NL"
        self.shipping = 0


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(lambda context: print("parent: order received")).sub_workflow(
            "QuoteWorkflow", lambda data, context: ShippingQuote(data.weight, data.country)
        ).output("shipping", lambda step: step.result.price).then(
            lambda context: print(f"parent: shipping is {context.workflow.data.shipping}")
        )


host = configure_workflow_host()
host.register_workflow(QuoteWorkflow())
host.register_workflow(OrderWorkflow())
host.start()

wid = host.start_workflow("OrderWorkflow", 1, Order())
instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value}, shipping = {instance.data.shipping}")
[child] = host.query_workflows(definition_id="QuoteWorkflow")
print(f"QuoteWorkflow is {child.status.value}; started by this order: {child.parent_workflow_id == wid}")
host.stop()
