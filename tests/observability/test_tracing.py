"""OpenTelemetry spans: a pass span per pass, step spans under it, and a start made inside a span
carried through the store to whichever host runs the workflow."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from flows import Fails, Greets
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from polling import wait_until

from liteflow.core import WorkflowStatus, configure_workflow_host
from liteflow.tracing import enable_tracing


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name.startswith(prefix)]


def test_a_start_inside_a_span_parents_the_workflow_run_by_another_host(
    tmp_path: Path, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    store = f"sqlite:///{tmp_path / 'traces.db'}"
    client = configure_workflow_host(persistence_service=store)  # starts only: never runs a step
    enable_tracing(client, tracer_provider=provider)
    client.register_workflow(Fails())
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("http request") as request:
        workflow_id = client.start_workflow("Fails")
    with configure_workflow_host(persistence_service=store, poll_interval=timedelta(milliseconds=100)) as worker:
        enable_tracing(worker, tracer_provider=provider)
        worker.register_workflow(Fails())
        assert worker.wait_for_workflow(workflow_id, timeout=10).status is WorkflowStatus.TERMINATED

    finished = exporter.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    passes = named(finished, "liteflow.pass Fails")
    assert passes, [span.name for span in finished]
    for span in passes:
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert span.attributes is not None and span.attributes["liteflow.workflow.id"] == workflow_id
    pass_ids = {span.context.span_id for span in passes}
    steps = {span.name: span for span in named(finished, "liteflow.step")}
    assert {"liteflow.step greet", "liteflow.step explode"} <= steps.keys()
    for span in steps.values():
        assert span.parent is not None and span.parent.span_id in pass_ids
    explode = steps["liteflow.step explode"]
    assert explode.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in explode.events)
    assert explode.attributes is not None and explode.attributes["liteflow.step.attempt"] == 1


def test_a_published_event_is_linked_from_the_step_it_resumes(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with configure_workflow_host() as host:
        enable_tracing(host, tracer_provider=provider)
        host.register_workflow(Greets())
        workflow_id = host.start_workflow("Greets")  # outside any span: a trace of its own
        wait_until(lambda: host.get_workflow_instance(workflow_id).execution_pointers[-1].event_name == "go")
        with provider.get_tracer("test").start_as_current_span("webhook") as webhook:
            host.publish_event("go", "k")
        assert host.wait_for_workflow(workflow_id, timeout=10).status is WorkflowStatus.COMPLETE
    finished = exporter.get_finished_spans()
    linked = [span for span in named(finished, "liteflow.step") if span.links]
    assert len(linked) == 1
    assert linked[0].links[0].context.span_id == webhook.get_span_context().span_id
    for span in named(finished, "liteflow.pass"):
        assert span.parent is None  # the start had no span to join
