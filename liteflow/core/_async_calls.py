"""The host's calls for asyncio code: each runs its blocking twin in a worker thread
(``asyncio.to_thread``), so a caller on an event loop (a FastAPI or aiohttp handler) never blocks
the loop on the store, the queue or the lock."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._models import WorkflowInstance, WorkflowStatus

if TYPE_CHECKING:
    from ._host import WorkflowHost


class AsyncCalls:
    """Mixed into :class:`WorkflowHost`."""

    async def start_workflow_async(
        self,
        workflow_id: str,
        version: int | None = None,
        data: Any = None,
        *,
        reference: str | None = None,
        instance_id: str | None = None,
        priority: int = 0,
    ) -> str:
        """:meth:`WorkflowHost.start_workflow`, awaited without blocking the event loop."""
        host: WorkflowHost = self  # type: ignore[assignment]
        return await asyncio.to_thread(
            host.start_workflow,
            workflow_id,
            version,
            data,
            reference=reference,
            instance_id=instance_id,
            priority=priority,
        )

    async def publish_event_async(
        self, event_name: str, event_key: Any, event_data: Any = None, effective_date: datetime | None = None
    ) -> str:
        """:meth:`WorkflowHost.publish_event`, awaited without blocking the event loop."""
        host: WorkflowHost = self  # type: ignore[assignment]
        return await asyncio.to_thread(host.publish_event, event_name, event_key, event_data, effective_date)

    async def get_workflow_instance_async(self, workflow_id: str) -> WorkflowInstance:
        """:meth:`WorkflowHost.get_workflow_instance`, awaited without blocking the event loop."""
        host: WorkflowHost = self  # type: ignore[assignment]
        return await asyncio.to_thread(host.get_workflow_instance, workflow_id)

    async def query_workflows_async(
        self,
        *,
        status: WorkflowStatus | None = None,
        workflow_id: str | None = None,
        reference: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkflowInstance]:
        """:meth:`WorkflowHost.query_workflows`, awaited without blocking the event loop."""
        host: WorkflowHost = self  # type: ignore[assignment]
        return await asyncio.to_thread(
            host.query_workflows,
            status=status,
            workflow_id=workflow_id,
            reference=reference,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            offset=offset,
        )
