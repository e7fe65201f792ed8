"""``liteflow dashboard`` as a person starts it: the real console script in a subprocess, over a
SQLite store a host of this test filled, with the definitions loaded by ``--app``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")
from polling import wait_until

from liteflow.core import WorkflowStatus, configure_workflow_host

from .dashboard_flows import WORKFLOWS

LITEFLOW = Path(sys.executable).with_name("liteflow")
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, **headers: str) -> int:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A store with one order waiting for its event; yields (store URL, the order's id)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    host = configure_workflow_host(url)
    for workflow in WORKFLOWS:
        host.register_workflow(workflow())
    workflow_id = host.start_workflow("order", 1, {"order": "C-1"})
    host.run_until_idle()
    for resource in (host.queue, host.lock, host.persistence):
        resource.close()
    yield url, workflow_id


def _serve(store: str, port: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LITEFLOW_")}
    environ["PYTHONPATH"] = str(HERE)
    environ.update(env or {})
    command = [str(LITEFLOW), "dashboard", "--store", store, "--app", "dashboard_flows", "--port", str(port), *extra]
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def test_the_command_serves_the_dashboard_with_a_token_from_the_environment(store: tuple[str, str]) -> None:
    url, workflow_id = store
    port = _free_port()
    process = _serve(url, port, env={"LITEFLOW_DASHBOARD_TOKEN": "cli-token"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(base + "/health")[0] == 200 or process.poll() is not None, "the dashboard")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        status, page = _get(base + "/instances")
        assert status == 200 and workflow_id in page
        status, page = _get(f"{base}/instances/{workflow_id}")
        assert 'data-active="true"' in page  # --app loaded the definition: the graph is drawn
        status, page = _get(base + "/definitions")
        assert "order v1" in page
        status, metrics = _get(base + "/metrics")
        assert status == 200 and "liteflow_runnable_instances" in metrics
        assert _post(f"{base}/instances/{workflow_id}/suspend") == 403
        assert _post(f"{base}/instances/{workflow_id}/suspend", Authorization="Bearer cli-token") == 303
    finally:
        stderr = _stop(process)
    assert f"liteflow dashboard at http://127.0.0.1:{port}/ (actions need the token)" in stderr
    assert process.returncode == 0
    host = configure_workflow_host(url)
    try:
        assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.SUSPENDED
    finally:
        host.persistence.close()


def test_without_a_token_it_is_read_only(store: tuple[str, str]) -> None:
    url, workflow_id = store
    port = _free_port()
    process = _serve(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(base + "/health")[0] == 200 or process.poll() is not None, "the dashboard")
        assert _post(f"{base}/instances/{workflow_id}/terminate", Authorization="Bearer anything") == 403
    finally:
        stderr = _stop(process)
    assert "read-only (no --token)" in stderr
    assert "liteflow dashboard stopped" in stderr
    assert process.returncode == 0


def test_a_missing_store_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    result = subprocess.run(
        [str(LITEFLOW), "dashboard", "--store", f"sqlite:///{missing}", "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no SQLite database at {missing}" in result.stderr
