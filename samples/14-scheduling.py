"""Time: a delay, a block scheduled for later, a block that recurs until a condition holds, and a
wait for an event that gives up after a timeout. Each line shows when it was printed."""

import time
from datetime import timedelta

from liteflow.core import *

started = time.monotonic()


def say(text):
    print(f"+{time.monotonic() - started:.1f} s  {text}")


class Tick(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data.ticks += 1
        say(f"tick {context.workflow.data.ticks}")


class MyData:
    def __init__(self):
        self.ticks = 0
        self.approval = None


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(lambda context: say("started")).delay(
            lambda data, context: timedelta(milliseconds=200)
        ).then(lambda context: say("after the delay")).schedule(lambda data, context: timedelta(milliseconds=300)).do(
            lambda later: later.start_with(lambda context: say("scheduled reminder"))
        ).recur(lambda data, context: timedelta(milliseconds=100), lambda data, context: data.ticks >= 3).do(
            lambda every: every.start_with(Tick)
        ).wait_for(
            "approval", lambda data, context: "order-1", timeout=timedelta(milliseconds=600), timeout_outcome="expired"
        ).output("approval", lambda step: step.event_data).when("expired").do(
            lambda then: then.start_with(lambda context: say("no approval in time: escalated"))
        )


host = configure_workflow_host()
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, MyData())
instance = host.wait_for_workflow(wid, timeout=5)
say(f"Workflow is {instance.status.value} after {instance.data.ticks} ticks")
host.stop()
