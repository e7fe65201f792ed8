"""Prometheus metrics: counters and histograms move as a host works, and a host process serves them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from flows import Fails, Greets
from polling import wait_until

from liteflow.core import WorkflowStatus, configure_workflow_host
from liteflow.metrics import enable_metrics, serve_metrics

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_counters_histograms_and_gauge_follow_the_host() -> None:
    registry = prometheus_client.CollectorRegistry()
    with configure_workflow_host() as host:
        host.register_workflow(Greets())
        host.register_workflow(Fails())
        enable_metrics(host, registry=registry)
        waiting = host.start_workflow("Greets")
        failed = host.start_workflow("Fails")
        assert host.wait_for_workflow(failed, timeout=10).status is WorkflowStatus.TERMINATED
        wait_until(lambda: host.get_workflow_instance(waiting).execution_pointers[-1].event_name == "go")
        host.publish_event("go", "k")
        assert host.wait_for_workflow(waiting, timeout=10).status is WorkflowStatus.COMPLETE

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("liteflow_workflows_started_total", workflow="Greets") == 1
    assert value("liteflow_workflows_started_total", workflow="Fails") == 1
    assert value("liteflow_workflows_completed_total", workflow="Greets") == 1
    assert value("liteflow_workflows_terminated_total", workflow="Fails") == 1
    assert value("liteflow_workflows_completed_total", workflow="Fails") is None
    assert value("liteflow_step_executions_total", workflow="Fails", step="explode", result="error") == 1
    assert value("liteflow_step_executions_total", workflow="Greets", step="greet", result="success") == 1
    assert value("liteflow_step_executions_total", workflow="Greets", step="again", result="success") == 1
    assert value("liteflow_step_duration_seconds_count", workflow="Greets", step="greet") == 1
    assert value("liteflow_event_delivery_seconds_count", workflow="Greets") == 1
    delivery = value("liteflow_event_delivery_seconds_sum", workflow="Greets")
    assert delivery is not None and 0 <= delivery < 10
    assert value("liteflow_runnable_instances") == 0  # everything ended
    # No instance ids in any label: the series stay bounded by definitions and steps.
    for metric in registry.collect():
        for sample in metric.samples:
            assert waiting not in sample.labels.values() and failed not in sample.labels.values()


def test_a_liteflow_worker_serves_metrics_that_move(tmp_path: Path) -> None:
    store, port = f"sqlite:///{tmp_path / 'metrics.db'}", free_port()
    configure_workflow_host(persistence_service=store).persistence.close()  # the store the worker opens
    liteflow = Path(sys.executable).with_name("liteflow")
    command = [str(liteflow), "worker", str(HERE / "flows.py"), "--store", store, "--poll-interval", "0.1"]
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:  # a file, so a chatty worker never blocks on a full pipe
        node = subprocess.Popen([*command, "--metrics-port", str(port)], stderr=stderr)
    try:
        wait_until(lambda: "liteflow worker ready" in log.read_text())

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return str(response.read().decode())

        assert 'liteflow_workflows_terminated_total{workflow="Fails"}' not in scrape()
        # Started from this process (a client that runs nothing); the worker finds them in the store.
        client = configure_workflow_host(persistence_service=store)
        client.register_workflow(Fails())
        ids = [client.start_workflow("Fails") for _ in range(3)]
        wait_until(lambda: all(client.get_workflow_instance(i).status is WorkflowStatus.TERMINATED for i in ids))
        wait_until(lambda: 'liteflow_workflows_terminated_total{workflow="Fails"} 3.0' in scrape())
        text = scrape()
        assert 'liteflow_step_executions_total{result="error",step="explode",workflow="Fails"} 3.0' in text
        assert 'liteflow_step_duration_seconds_count{step="greet",workflow="Fails"} 3.0' in text
        assert "liteflow_runnable_instances 0.0" in text
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
    finally:
        if node.poll() is None:
            node.kill()


def test_serve_metrics_serves_a_given_registry() -> None:
    registry = prometheus_client.CollectorRegistry()
    with configure_workflow_host(poll_interval=timedelta(seconds=1)) as host:
        enable_metrics(host, registry=registry)
        port = free_port()
        server = serve_metrics(port, registry=registry)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
        finally:
            server.shutdown()
    assert "# TYPE liteflow_step_executions_total counter" in text
    assert "python_gc_objects_collected_total" not in text  # only the registry we gave
