"""Prometheus metrics for a workflow host (``pip install "liteflow-engine[prometheus]"``).

``enable_metrics(host)`` counts what the host does, through its lifecycle events and a step
middleware, into a ``prometheus_client`` registry; ``serve_metrics(port)`` serves that registry at
``/metrics``. Labels are the definition id and the step name only, never instance ids, so the
number of series stays bounded by the number of definitions and steps.

=====================================  =========  ==========================================
metric                                 type       labels
=====================================  =========  ==========================================
liteflow_workflows_started_total       counter    workflow
liteflow_workflows_completed_total     counter    workflow
liteflow_workflows_terminated_total    counter    workflow
liteflow_step_executions_total         counter    workflow, step, result (success | error)
liteflow_step_duration_seconds         histogram  workflow, step
liteflow_event_delivery_seconds        histogram  workflow (event published to step resumed)
liteflow_runnable_instances            gauge      (instances due now, read at scrape time)
=====================================  =========  ==========================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .core import (
    ConfigurationError,
    ExecutionResult,
    LifecycleEvent,
    LifecycleEventType,
    LiteFlowError,
    StepBody,
    StepExecutionContext,
    WorkflowHost,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["WorkflowMetrics", "enable_metrics", "serve_metrics"]

logger = logging.getLogger("liteflow")

_INSTALL = 'pip install "liteflow-engine[prometheus]"'


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as error:
        raise ConfigurationError(f"metrics need prometheus_client: {_INSTALL}") from error
    return prometheus_client


class WorkflowMetrics:
    """The metrics of one or more hosts, registered in one ``prometheus_client`` registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        prometheus = _prometheus()
        self.registry: CollectorRegistry = registry if registry is not None else prometheus.REGISTRY
        counter, histogram = prometheus.Counter, prometheus.Histogram
        self.started = counter(
            "liteflow_workflows_started", "Workflow instances started", ["workflow"], registry=self.registry
        )
        self.completed = counter(
            "liteflow_workflows_completed", "Workflow instances completed", ["workflow"], registry=self.registry
        )
        self.terminated = counter(
            "liteflow_workflows_terminated", "Workflow instances terminated", ["workflow"], registry=self.registry
        )
        self.step_executions = counter(
            "liteflow_step_executions",
            "Step executions by result (success or error)",
            ["workflow", "step", "result"],
            registry=self.registry,
        )
        self.step_duration = histogram(
            "liteflow_step_duration_seconds", "Time a step's body took", ["workflow", "step"], registry=self.registry
        )
        self.event_delivery = histogram(
            "liteflow_event_delivery_seconds",
            "From an event's time to the waiting step resuming with it",
            ["workflow"],
            registry=self.registry,
        )
        self._hosts: list[WorkflowHost] = []
        self.registry.register(_RunnableCollector(self._hosts))

    def attach(self, host: WorkflowHost) -> None:
        """Count what ``host`` does from now on."""
        self._hosts.append(host)
        host.on_lifecycle_event(self._on_lifecycle)
        host.use_step_middleware(self._measure_step(host))

    def _on_lifecycle(self, event: LifecycleEvent) -> None:
        counter = {
            LifecycleEventType.WORKFLOW_STARTED: self.started,
            LifecycleEventType.WORKFLOW_COMPLETED: self.completed,
            LifecycleEventType.WORKFLOW_TERMINATED: self.terminated,
        }.get(event.type)
        if counter is not None:
            counter.labels(event.workflow_definition_id).inc()

    def _measure_step(
        self, host: WorkflowHost
    ) -> Callable[[StepExecutionContext, StepBody, Callable[[], ExecutionResult]], ExecutionResult]:
        def middleware(
            context: StepExecutionContext, body: StepBody, next_: Callable[[], ExecutionResult]
        ) -> ExecutionResult:
            workflow = context.workflow.workflow_definition_id
            step = context.step.name or context.step.body_name
            self._observe_delivery(host, context, workflow)
            started = time.perf_counter()
            try:
                result = next_()
            except BaseException:
                self.step_executions.labels(workflow, step, "error").inc()
                raise
            finally:
                self.step_duration.labels(workflow, step).observe(time.perf_counter() - started)
            self.step_executions.labels(workflow, step, "success").inc()
            return result

        return middleware

    def _observe_delivery(self, host: WorkflowHost, context: StepExecutionContext, workflow: str) -> None:
        pointer = context.execution_pointer
        # A waiting step runs once more after its event arrived, before it completes: measure then.
        if not (pointer.event_published and pointer.event_id and pointer.end_time is None):
            return
        try:
            event = host.persistence.get_event(pointer.event_id)
        except LiteFlowError:
            return  # purged already, or the store is away: a metric is not worth failing a step
        self.event_delivery.labels(workflow).observe(
            max(0.0, (datetime.now(timezone.utc) - event.event_time).total_seconds())
        )


class _RunnableCollector:
    """``liteflow_runnable_instances``: asked of the store at scrape time, not kept up to date."""

    def __init__(self, hosts: list[WorkflowHost]) -> None:
        self._hosts = hosts

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        gauge = GaugeMetricFamily("liteflow_runnable_instances", "Instances due to run now, as the store reports them")
        if self._hosts:
            try:
                due = self._hosts[0].persistence.get_runnable_instances(datetime.now(timezone.utc))
            except Exception:  # a scrape during an outage reports no value rather than failing
                logger.warning("could not count runnable instances for metrics", exc_info=True)
            else:
                gauge.add_metric([], len(due))
                yield gauge

    def describe(self) -> Iterator[Any]:
        return iter(())  # collected lazily, never at registration


def enable_metrics(host: WorkflowHost, *, registry: CollectorRegistry | None = None) -> WorkflowMetrics:
    """Count ``host``'s workflows and steps into ``registry`` (the default registry if None).

    Returns the :class:`WorkflowMetrics`; pass it on to count further hosts into the same series
    with :meth:`WorkflowMetrics.attach`.
    """
    metrics = WorkflowMetrics(registry)
    metrics.attach(host)
    return metrics


def serve_metrics(port: int, *, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Any:
    """Serve ``registry`` (the default registry if None) at ``http://addr:port/metrics`` from a
    daemon thread. Returns the HTTP server; call ``shutdown()`` on it to stop serving."""
    prometheus = _prometheus()
    server, _thread = prometheus.start_http_server(
        port, addr=addr, registry=registry if registry is not None else prometheus.REGISTRY
    )
    return server
