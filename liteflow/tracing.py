"""OpenTelemetry traces for a workflow host (``pip install "liteflow-engine[otel]"``).

``enable_tracing(host)`` makes the host record:

- a span per execution pass (``liteflow.pass <definition>``), the parent of
- a span per step run (``liteflow.step <step name>``), with the exception recorded on failure.

Attributes: ``liteflow.workflow.definition``, ``liteflow.workflow.version``, ``liteflow.workflow.id``,
``liteflow.step.name``, ``liteflow.step.attempt``, ``liteflow.step.outcome``.

A ``start_workflow`` made inside an active span stores that span's W3C trace context with the
instance, so every pass of the workflow, on whichever host process runs it, is a child of that
span (sub-workflows inherit it). A ``publish_event`` made inside a span stores its context with the
event; the step that resumes with the event links to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .core import (
    ConfigurationError,
    Event,
    ExecutionResult,
    LiteFlowError,
    StepBody,
    StepExecutionContext,
    WorkflowHost,
    WorkflowInstance,
    WorkflowMiddleware,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = ["enable_tracing"]

_INSTALL = 'pip install "liteflow-engine[otel]"'


def _otel() -> tuple[Any, Any]:
    try:
        from opentelemetry import propagate, trace
    except ImportError as error:
        raise ConfigurationError(f"tracing needs opentelemetry-api: {_INSTALL}") from error
    return trace, propagate


class _Propagation(WorkflowMiddleware):
    """Stores the caller's trace context with what it starts or publishes."""

    def __init__(self, propagate: Any) -> None:
        self._propagate = propagate

    def _carrier(self) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        return carrier or None  # no active span: nothing to link to

    def before_start(self, instance: WorkflowInstance) -> None:
        instance.trace_context = instance.trace_context or self._carrier()

    def before_publish(self, event: Event) -> None:
        event.trace_context = self._carrier()


def enable_tracing(host: WorkflowHost, *, tracer_provider: TracerProvider | None = None) -> None:
    """Record spans for ``host``'s passes and steps through ``tracer_provider`` (the global one if None)."""
    trace, propagate = _otel()
    tracer: Tracer = trace.get_tracer("liteflow", tracer_provider=tracer_provider)
    host.use_workflow_middleware(_Propagation(propagate))
    host.use_pass_middleware(_pass_spans(tracer, propagate))
    host.use_step_middleware(_step_spans(tracer, trace, propagate, host))


def _pass_spans(tracer: Tracer, propagate: Any) -> Callable[[WorkflowInstance, Callable[[], Any]], Any]:
    def middleware(instance: WorkflowInstance, next_: Callable[[], Any]) -> Any:
        parent = propagate.extract(instance.trace_context) if instance.trace_context else None
        attributes: dict[str, str | int] = {
            "liteflow.workflow.definition": instance.workflow_definition_id,
            "liteflow.workflow.version": instance.version,
            "liteflow.workflow.id": instance.id,
        }
        name = f"liteflow.pass {instance.workflow_definition_id}"
        with tracer.start_as_current_span(name, context=parent, attributes=attributes):
            return next_()

    return middleware


def _step_spans(
    tracer: Tracer, trace: Any, propagate: Any, host: WorkflowHost
) -> Callable[[StepExecutionContext, StepBody, Callable[[], ExecutionResult]], ExecutionResult]:
    def event_link(context: StepExecutionContext) -> list[Any]:
        pointer = context.execution_pointer
        if not (pointer.event_published and pointer.event_id and pointer.end_time is None):
            return []
        try:
            event = host.persistence.get_event(pointer.event_id)
        except LiteFlowError:
            return []
        if not event.trace_context:
            return []
        span_context = trace.get_current_span(propagate.extract(event.trace_context)).get_span_context()
        return [trace.Link(span_context)] if span_context.is_valid else []

    def middleware(
        context: StepExecutionContext, body: StepBody, next_: Callable[[], ExecutionResult]
    ) -> ExecutionResult:
        instance, pointer = context.workflow, context.execution_pointer
        step = context.step.name or context.step.body_name
        attributes: dict[str, str | int] = {
            "liteflow.workflow.definition": instance.workflow_definition_id,
            "liteflow.workflow.version": instance.version,
            "liteflow.workflow.id": instance.id,
            "liteflow.step.name": step,
            "liteflow.step.attempt": pointer.retry_count + 1,
        }
        with tracer.start_as_current_span(
            f"liteflow.step {step}", attributes=attributes, links=event_link(context)
        ) as span:
            result = next_()
            if result.outcome_value is not None:
                span.set_attribute("liteflow.step.outcome", str(result.outcome_value))
            return result

    return middleware
