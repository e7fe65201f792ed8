"""What the dashboard tests share: a SQLite store with a running host and some workflows in it,
the dashboard served by a real uvicorn server (in a thread, on a socket bound beforehand so it
accepts connections at once), and helpers to poll and to keep screenshots."""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from liteflow.core import PointerStatus, WorkflowHost, WorkflowStatus, configure_workflow_host
from liteflow.dashboard import create_app

from .dashboard_flows import WORKFLOWS

TOKEN = "s3cret-dashboard-token"
DEADLINE = 30.0
HOSTILE_SCRIPT = "<script>window.__xss = 'script'</script>"
HOSTILE_ATTRIBUTE = '"><img src=x id=injected onerror="window.__xss = \'img\'">'
REPO = Path(__file__).resolve().parents[2]


class Server:
    """A uvicorn server for ``app`` in a daemon thread, on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)  # connections wait in the backlog until uvicorn accepts them
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


@dataclass
class Stack:
    """The store, the host running the workflows, and the instances the tests look at."""

    store: str
    host: WorkflowHost
    waiting: str
    """An order waiting for its ``approved`` event (on step 1)."""
    hostile: str
    """An order whose data and reference hold HTML and script."""
    failed: str
    """A suspended workflow whose step failed."""

    def status(self, workflow_id: str) -> WorkflowStatus:
        return self.host.get_workflow_instance(workflow_id).status


def _waiting_for_event(host: WorkflowHost, workflow_id: str) -> bool:
    pointers = host.get_workflow_instance(workflow_id).execution_pointers
    return any(p.status is PointerStatus.WAITING_FOR_EVENT for p in pointers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("dashboard")
    store = f"sqlite:///{folder / 'dashboard.db'}"
    host = configure_workflow_host(store)
    for workflow in WORKFLOWS:
        host.register_workflow(workflow())
    host.start()
    try:
        quick = [host.start_workflow("quick", 1, {"n": i}) for i in range(12)]
        waiting = host.start_workflow("order", 1, {"order": "A-1", "customer": "Ada"}, reference="order-A-1")
        hostile = host.start_workflow(
            "order", 1, {"order": "X-1", "note": HOSTILE_SCRIPT, "html": HOSTILE_ATTRIBUTE}, reference=HOSTILE_ATTRIBUTE
        )
        failed = host.start_workflow("failing", 1, {"label": "<b>bold</b>"})
        host.publish_event("hostile", "X-9", {"note": HOSTILE_SCRIPT, "html": HOSTILE_ATTRIBUTE})
        for workflow_id in quick:
            host.wait_for_workflow(workflow_id, timeout=DEADLINE)
        for workflow_id in (waiting, hostile):
            wait_until(functools.partial(_waiting_for_event, host, workflow_id), f"{workflow_id} to wait for its event")
        wait_until(lambda: host.get_workflow_instance(failed).status is WorkflowStatus.SUSPENDED, "the failure")
        yield Stack(store, host, waiting, hostile, failed)
    finally:
        host.stop()


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[Server]:
    """The dashboard with actions allowed to holders of TOKEN."""
    running = Server(create_app(host=stack.host, token=TOKEN))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def readonly_server(stack: Stack) -> Iterator[Server]:
    """The dashboard without a token: read-only."""
    running = Server(create_app(host=stack.host))
    yield running
    running.stop()


class Screenshots:
    """Saves full-page screenshots under the test run's artifacts folder (LITEFLOW_TEST_ARTIFACTS,
    else pytest's temporary folder) and, when LITEFLOW_DOCS_SCREENSHOTS=1, those the README shows
    also as docs/images/dashboard-NAME.png."""

    DOCS = frozenset({"overview", "instances", "instance", "definitions"})

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.docs = os.environ.get("LITEFLOW_DOCS_SCREENSHOTS") == "1"

    def take(self, page: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        if self.docs and name in self.DOCS:
            (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(REPO / "docs" / "images" / f"dashboard-{name}.png"), full_page=False)
        return path


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Screenshots:
    configured = os.environ.get("LITEFLOW_TEST_ARTIFACTS")
    folder = Path(configured) / "dashboard-screenshots" if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return Screenshots(folder)
