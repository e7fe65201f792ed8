"""The command line as a person first meets it: help, completion, and mistakes answered with one
line and exit status 2 (bad usage) or 1 (a failed operation). No worker or store server needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from liteflow.cli import cli

from .cli_harness import LITEFLOW, WORKFLOWS

COMMANDS = [
    "errors",
    "fork",
    "graph",
    "list",
    "publish",
    "purge",
    "resume",
    "retry",
    "show",
    "suspend",
    "terminate",
    "worker",
]


def liteflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LITEFLOW), *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store that exists (made by configuring a host on it)."""
    from liteflow.core import configure_workflow_host

    url = f"sqlite:///{tmp_path / 'store.db'}"
    configure_workflow_host(url).persistence.close()
    return url


def test_help_lists_every_command_and_each_has_its_own_help() -> None:
    main = liteflow("--help")
    assert main.returncode == 0
    listed = [line.split()[0] for line in main.stdout.split("Commands:")[1].splitlines() if line.startswith("  ")]
    assert [c for c in listed if c in COMMANDS] == COMMANDS
    assert "_LITEFLOW_COMPLETE=bash_source liteflow" in main.stdout
    # One of each kind through the console script (start-up is the cost); all of them in-process.
    for command in ("worker", "terminate", "show"):
        result = liteflow(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"Usage: liteflow {command} ") and "--store URL" in result.stdout
    for command in COMMANDS:
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and f"Usage: cli {command} " in result.output, command


def test_python_dash_m_liteflow_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "liteflow", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("liteflow, version ")


def test_shell_completion_through_click() -> None:
    script = liteflow(env={"_LITEFLOW_COMPLETE": "bash_source", "PATH": str(LITEFLOW.parent)})
    assert script.returncode == 0 and "complete " in script.stdout and "_liteflow_completion" in script.stdout
    env = {"_LITEFLOW_COMPLETE": "bash_complete", "COMP_WORDS": "liteflow te", "COMP_CWORD": "1"}
    words = liteflow(env=env)
    assert words.returncode == 0 and "plain,terminate" in words.stdout.split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--store", "foo://x"], "error: no persistence provider for URL 'foo://x'; supported: memory://,"),
        (["publish", "go", "k", "--data", "{bad"], "error: Invalid value for --data: not valid JSON:"),
        (["list", "--since", "yesterday"], "error: Invalid value for '--since': 'yesterday' is not a duration"),
        (["list", "--bogus"], "error: No such option '--bogus'"),
        (["suspend"], "error: give the ids of the workflows to suspend, or filters"),
        (["terminate", "abc", "--status", "runnable"], "error: give workflow ids or filters, not both"),
        (["suspend", "--status", "complete"], "error: Invalid value for --status: only runnable workflows can be"),
        (["purge", "--older-than", "1d", "--status", "done"], "error: Invalid value for --status: 'done': statuses"),
        (["worker", "no_such_module_here"], "error: Invalid value for MODULE: no module named 'no_such_module_here'"),
        (["worker", f"{WORKFLOWS}:nothing"], "error: Invalid value for MODULE[:ATTR]: module"),
    ],
)
def test_bad_usage_is_one_line_and_exit_status_2(store: str, args: list[str], message: str) -> None:
    result = liteflow(*args, "--store", store) if "--store" not in args else liteflow(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1, "one line, no traceback"
    assert result.stdout == ""


def test_a_missing_store_or_database_file_is_bad_usage(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITEFLOW_")}
    none = liteflow("list", env=env)
    assert (none.returncode, none.stderr.splitlines()[0]) == (
        2,
        "error: no store given: pass --store URL or set LITEFLOW_STORE (see 'liteflow list --help')",
    )
    typo = liteflow("list", env={**env, "LITEFLOW_STORE": f"sqlite:///{tmp_path / 'typo.db'}"})
    assert typo.returncode == 2 and f"no SQLite database at {tmp_path / 'typo.db'}" in typo.stderr
    assert not (tmp_path / "typo.db").exists(), "the command did not create an empty store"


def test_a_worker_given_a_configured_host_refuses_other_backends(store: str, tmp_path: Path) -> None:
    app = tmp_path / "hosted.py"
    app.write_text("from liteflow.core import configure_workflow_host\nhost = configure_workflow_host()\n")
    result = liteflow("worker", f"{app}:host", "--store", store)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {app}:host is a configured host: its own store, queue, lock")
    assert result.stderr.count("\n") == 1


def test_debug_shows_the_traceback(store: str) -> None:
    quiet = liteflow("show", "nope", "--store", store)
    assert (quiet.returncode, quiet.stderr) == (1, "error: no workflow instance with id nope\n")
    loud = liteflow("show", "nope", "--store", store, "--debug")
    assert loud.returncode == 1
    assert "Traceback (most recent call last)" in loud.stderr and "WorkflowNotFoundError" in loud.stderr
    assert loud.stderr.endswith("error: no workflow instance with id nope\n")
