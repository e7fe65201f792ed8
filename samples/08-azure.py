"""Azure Storage for a multi-node cluster: work items travel through Azure Storage queues and each
workflow is locked with a blob lease, so several hosts can share the work.

Needs azure-storage-queue and azure-storage-blob (pip install "liteflow-engine[azure]") and a
storage account, by default the Azurite emulator on 127.0.0.1:10000 (blob) and 10001 (queue);
set AZURE_STORAGE_CONNECTION_STRING to use another. Every node must also share one persistence
provider (see 07-mongodb.py); this sample runs a single node on the in-memory one.
"""

import os

from liteflow.core import *
from liteflow.providers.azure import AzureLockProvider, AzureQueueProvider

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


class Hello(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Hello world")


class Goodbye(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Goodbye")
        return ExecutionResult.next()


class MyData:
    def __init__(self):
        self.captured_value = None


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Hello).wait_for("event1", lambda data, context: "key1").output(
            "captured_value", lambda step: step.event_data
        ).then(Goodbye)


connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", AZURITE)
queue = AzureQueueProvider(connection_string)
lock = AzureLockProvider(connection_string)
host = configure_workflow_host(queue_service=queue, lock_service=lock)
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, MyData())
host.publish_event("event1", "key1", "hello")

instance = host.wait_for_workflow(wid, timeout=30)
print(f"captured_value = {instance.data.captured_value} ({instance.status.value})")
host.stop()
queue.close()
lock.close()
