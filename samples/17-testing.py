"""Testing: WorkflowTestHost runs a workflow in the calling thread on a clock the test moves, so a
workflow that waits three days is tested in milliseconds."""

import time
from datetime import timedelta

from liteflow.core import *
from liteflow.testing import WorkflowTestHost


class MyData:
    def __init__(self):
        self.sent = []


class InvoiceWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(lambda context: context.workflow.data.sent.append("invoice")).delay(
            lambda data, context: timedelta(days=3)
        ).then(lambda context: context.workflow.data.sent.append("reminder"))


def test_the_reminder_goes_out_three_days_after_the_invoice():
    test = WorkflowTestHost(InvoiceWorkflow())
    wid = test.start_workflow("InvoiceWorkflow", data=MyData())  # runs until the delay
    assert test.instance(wid).data.sent == ["invoice"]

    test.advance(timedelta(days=2, hours=23))  # not yet
    assert test.instance(wid).data.sent == ["invoice"]

    instance = test.run_to_completion(wid)  # jumps the clock to each due time
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data.sent == ["invoice", "reminder"]
    assert instance.complete_time - instance.create_time == timedelta(days=3)
    assert test.errors(wid) == []


started = time.perf_counter()
test_the_reminder_goes_out_three_days_after_the_invoice()
print(f"three days of workflow time took {(time.perf_counter() - started) * 1000:.0f} ms")
print("ok")
