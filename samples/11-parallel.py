"""Parallel branches and a sequential for_each. FetchPrices is an async step (`async def run`): the
host runs it on its event loop and goes on when it returns. While its branch waits out a delay,
the other branch runs; the step after join() runs once both have ended. The for_each then handles
one item at a time, in order."""

import asyncio
from datetime import timedelta

from liteflow.core import *


class FetchPrices(StepBody):
    async def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("prices: fetching (async)")
        await asyncio.sleep(0.2)
        print("prices: done")
        return ExecutionResult.next()


class CheckStock(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("stock: checked")


class Pack(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"pack {context.execution_pointer.context_item}")


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(lambda context: print("order received")).parallel().do(
            lambda branch: (
                branch.start_with(FetchPrices)
                .delay(lambda data, context: timedelta(milliseconds=200))
                .then(lambda context: print("prices: confirmed"))
            )
        ).do(lambda branch: branch.start_with(CheckStock)).join().then(
            lambda context: print("both branches done")
        ).for_each(lambda data, context: ["cups", "tea", "teapot"], run_parallel=False).do(
            lambda each: (
                each.start_with(Pack)
                .delay(lambda data, context: timedelta(milliseconds=50))
                .then(lambda context: print(f"  {context.execution_pointer.context_item} packed"))
            )
        ).then(lambda context: print("all packed"))


host = configure_workflow_host()
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, None)
instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value}")
host.stop()
