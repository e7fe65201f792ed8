# requires: host
"""``workflow_id``: a ``MyWorkflow`` instance on the running ``host`` that has completed."""

import asyncio

workflow_id = host.start_workflow("MyWorkflow", data=MyData())
host.wait_for_workflow(workflow_id, timeout=30)
