"""What the command-line tests drive: the real ``liteflow`` console script in subprocesses and
``liteflow worker`` processes running tests/cli/cli_workflows.py.

The worker shares no queue with the commands (each process has its own in-memory queue), so
everything the commands do reaches it through the store, as it would from another machine.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

from liteflow.core import WorkflowHost, WorkflowInstance, WorkflowStatus, configure_workflow_host

from . import cli_workflows

LITEFLOW = Path(sys.executable).with_name("liteflow")
WORKFLOWS = Path(__file__).with_name("cli_workflows.py")
DEADLINE = 30.0


@dataclass
class Backend:
    """One store (and lock) for the commands, the worker and the test's own reading host."""

    name: str
    store: str
    lock: str | None
    dir: Path
    _host: WorkflowHost | None = field(default=None, repr=False)

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LITEFLOW_")}
        env.update(LITEFLOW_STORE=self.store, LITEFLOW_TEST_DIR=str(self.dir), **extra)
        if self.lock:
            env["LITEFLOW_LOCK"] = self.lock
        return env

    def run(self, *args: str, app: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``liteflow ARGS`` (with ``--app`` pointing at the test workflows if asked)."""
        extra = {"LITEFLOW_APP": str(WORKFLOWS)} if app else {}
        return subprocess.run(
            [str(LITEFLOW), *args], env=self.environ(**extra), capture_output=True, text=True, timeout=60
        )

    @property
    def host(self) -> WorkflowHost:
        """A host in the test process that starts workflows and reads the store; it never runs a step."""
        if self._host is None:
            self._host = configure_workflow_host(self.store)
            for workflow in (cli_workflows.Order(), cli_workflows.Greeting(), cli_workflows.Slow()):
                self._host.register_workflow(workflow)
        return self._host

    def start(self, workflow: str, data: dict[str, Any], reference: str | None = None) -> str:
        return self.host.start_workflow(workflow, data=data, reference=reference)

    def wait_for(self, workflow_id: str, status: WorkflowStatus) -> WorkflowInstance:
        def reached() -> WorkflowInstance | None:
            instance = self.host.get_workflow_instance(workflow_id)
            return instance if instance.status is status else None

        found: WorkflowInstance = wait_until(reached, f"workflow {workflow_id} to be {status.value}")
        return found

    def effects(self, workflow_id: str) -> list[str]:
        """What the steps of a workflow did, in order (one entry per run)."""
        log = self.dir / "effects.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split(" ", 1)[1] for line in lines if line.startswith(workflow_id + " ")]

    def close(self) -> None:
        if self._host is not None:
            self._host.persistence.close()


class Worker:
    """A ``liteflow worker`` process; its stderr is collected by a thread so it never blocks."""

    def __init__(self, backend: Backend, *args: str) -> None:
        command = [str(LITEFLOW), "worker", str(WORKFLOWS), "--poll-interval", "0.2", *args]
        self.process = subprocess.Popen(command, env=backend.environ(), stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.expect("liteflow worker ready")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def expect(self, text: str, timeout: float = DEADLINE) -> str:
        """Wait for a line of the worker's stderr containing ``text``, and return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the worker never printed {text!r}; it printed:\n{''.join(self.log)}")
            self.log.append(line)
            if text in line:
                return line

    def kill(self) -> None:
        """End this worker at once if it still runs (after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and wait for the exit status."""
        self.process.send_signal(signum)
        return self.wait()

    def wait(self) -> int:
        return self.process.wait(timeout=DEADLINE)
