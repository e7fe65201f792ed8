# requires: steps
"""``InvoiceWorkflow``: send an invoice, wait three days, send a reminder; ``MyData.sent`` lists
what went out."""


class MyData:
    def __init__(self) -> None:
        self.sent: list[str] = []


class InvoiceWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(lambda context: context.workflow.data.sent.append("invoice"))
            .delay(lambda data, context: timedelta(days=3))
            .then(lambda context: context.workflow.data.sent.append("reminder"))
        )
