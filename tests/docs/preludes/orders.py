# requires: host
"""``order``, an ``Order`` (``number``, ``item``) to start ``OrderWorkflow`` with, and
``ReportWorkflow`` registered on the running ``host`` (a schedule's workflow)."""

from dataclasses import dataclass


@dataclass
class Order:
    number: int
    item: str


order = Order(number=42, item="book")


class ReportWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Hello)


host.register_workflow(ReportWorkflow())
