"""What users install, tested as they install it: the built wheel, in a fresh venv, used from elsewhere.

Run by ``make test-wheel`` after ``make dist`` (pytest is given this file by name: it is not a
``test_*.py`` file, so ``make test`` does not collect it). The wheel is ``$LITEFLOW_WHEEL`` or the one
in ``dist/``. It is installed with ``[all]`` (not editable, not the checkout) into a venv under a
temporary folder, and everything runs with a working directory outside the repository and no
``PYTHONPATH``, so nothing can be imported from the checkout by accident.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SEED_SAMPLES = [
    "01-hello-world.py",
    "02-passing-data.py",
    "03-waiting-for-events.py",
    "04-foreach.py",
    "05-if.py",
    "06-while.py",
]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED: dict[str, list[str]] = _load(ROOT / "tests" / "e2e" / "test_samples.py").EXPECTED  # one list of outputs


@dataclass
class Installed:
    """A venv holding the wheel, and a working folder outside the repository."""

    venv: Path
    outside: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONNOUSERSITE"] = "1"
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")])
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd or self.outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def ok(self, *args: str | Path, cwd: Path | None = None) -> str:
        result = self.run(*args, cwd=cwd)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def sample(self, name: str) -> str:
        """Runs a copy of the sample, so its folder (in the checkout) is not on sys.path either."""
        copy = self.outside / name
        shutil.copy(SAMPLES / name, copy)
        return self.ok(self.python, copy)


def the_wheel() -> Path:
    given = os.environ.get("LITEFLOW_WHEEL")
    wheels = [Path(given)] if given else sorted((ROOT / "dist").glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {ROOT / 'dist'}, found {wheels}: run `make dist` first"
    return wheels[0].resolve()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed-wheel")
    assert ROOT not in base.parents
    env = Installed(base / "venv", base / "work")
    env.outside.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(env.venv)], check=True)
    env.ok(env.python, "-m", "pip", "install", "--quiet", f"{the_wheel()}[all]")
    yield env


def test_the_wheel_is_installed_into_site_packages_not_the_checkout(installed: Installed) -> None:
    out = installed.ok(
        installed.python,
        "-c",
        "import liteflow, liteflow.core, pathlib; p = pathlib.Path(liteflow.__file__).parent; "
        "print(p); print(liteflow.__version__, liteflow.core.__version__); print((p / 'py.typed').is_file())",
    )
    where, versions, typed = out.splitlines()
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert Path(where).is_relative_to(installed.venv) and "site-packages" in Path(where).parts
    assert versions == f"{version} {version}"
    assert typed == "True"
    pip_show = installed.ok(installed.python, "-m", "pip", "show", "liteflow-engine")
    assert "Location: " in pip_show and "Editable project location" not in pip_show


@pytest.mark.parametrize("name", SEED_SAMPLES)
def test_a_seed_sample_runs_from_outside_the_repository(installed: Installed, name: str) -> None:
    out = installed.sample(name)
    for line in EXPECTED[name]:
        assert line in out, f"{line!r} missing from the output of {name}:\n{out}"


def test_the_demo_run_twice_leaves_a_workflow_waiting_then_finishes_it(installed: Installed) -> None:
    first = installed.sample("demo.py")
    assert "workflow complete" in first
    assert "run `make demo` again to see it resume from the database" in first
    parcel = re.search(r"dispatch: parcel (P-\d+) is with the courier", first)
    assert parcel, first
    assert (installed.outside / "liteflow-demo.db").is_file()  # in the working folder, not the checkout

    second = installed.sample("demo.py")
    assert f"in the store: parcel {parcel[1]}" in second
    assert "dispatch:" not in second  # the waiting workflow's first step is not run again
    assert f"delivered: parcel {parcel[1]} arrived" in second


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("liteflow.providers.mongo", "MongoPersistenceProvider"),  # as the seed writes it
        ("liteflow.providers.azure", "AzureQueueProvider, AzureLockProvider"),  # as the seed writes it
        ("liteflow.providers.redis", "RedisQueueProvider, RedisLockProvider"),
        ("liteflow.providers.rabbitmq", "RabbitMQQueueProvider"),
        ("liteflow.providers.postgres", "PostgresPersistenceProvider, PostgresQueueProvider, PostgresLockProvider"),
        ("liteflow.providers.sqlite", "SqlitePersistenceProvider"),
        ("liteflow.testing", "WorkflowTestHost"),
    ],
)
def test_the_providers_import_with_the_all_extra(installed: Installed, module: str, names: str) -> None:
    out = installed.ok(installed.python, "-c", f"from {module} import {names}; print({names})")
    assert out.count("<class") == names.count(",") + 1


# ---------------------------------------------------------------- an application installed as a wheel

MYAPP = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "myapp"
        version = "0.1.0"
        dependencies = ["liteflow-engine"]

        [tool.setuptools]
        packages = ["myapp"]
    """,
    "myapp/__init__.py": '"""A tiny application whose workflow data is a plain class of its own."""\n',
    "myapp/models.py": """
        class Order:
            def __init__(self, number, items):
                self.number = number
                self.items = items
                self.packed = []
                self.paid = 0
    """,
    "myapp/workflows.py": """
        from liteflow.core import *


        class Pack(StepBody):
            def run(self, context):
                order = context.workflow.data
                order.packed = [item.upper() for item in order.items]


        class OrderWorkflow(Workflow):
            def build(self, builder):
                builder.start_with(Pack)\\
                    .wait_for("paid", lambda data, context: data.number)\\
                        .output("paid", lambda step: step.event_data)
    """,
    "myapp/__main__.py": """
        import sys

        from liteflow.core import SerializationError, WorkflowStatus, configure_workflow_host, register_module

        from myapp.models import Order
        from myapp.workflows import OrderWorkflow

        command, store = sys.argv[1:3]
        if command == "trusted":
            register_module("myapp")  # the documented way for an installed application
        host = configure_workflow_host(persistence_service=store)
        host.register_workflow(OrderWorkflow())
        if command == "pay":
            register_module("myapp")
            host.start()
            try:
                host.publish_event("paid", "A-1", 42)
                instance = host.wait_for_workflow(sys.argv[3], timeout=60)
            finally:
                host.stop()
            data = instance.data
            print(instance.status.value, type(data).__module__, type(data).__qualname__, data.packed, data.paid)
            sys.exit(0)
        try:
            workflow_id = host.start_workflow("OrderWorkflow", data=Order("A-1", ["tea", "cups"]))
        except SerializationError as error:
            print("refused:", error)
            sys.exit(3)
        host.run_until_idle()
        instance = host.get_workflow_instance(workflow_id)
        assert instance.status is WorkflowStatus.RUNNABLE, instance.status
        print("waiting", workflow_id, instance.data.packed)
    """,
}


@pytest.fixture(scope="module")
def myapp(installed: Installed) -> Installed:
    """Builds the application above as a wheel and installs it next to liteflow-engine."""
    source = installed.outside.parent / "myapp-src"
    for name, text in MYAPP.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(textwrap.dedent(text))
    wheels = installed.outside.parent / "myapp-wheels"
    installed.ok(installed.python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, source)
    built = sorted(wheels.glob("myapp-*.whl"))
    assert len(built) == 1, built
    installed.ok(installed.python, "-m", "pip", "install", "--quiet", built[0])
    where = installed.ok(installed.python, "-c", "import myapp; print(myapp.__file__)").strip()
    assert "site-packages" in Path(where).parts
    return installed


def test_an_installed_app_is_refused_plain_class_data_until_it_trusts_its_package(myapp: Installed) -> None:
    store = f"sqlite:///{myapp.outside / 'untrusted.db'}"
    result = myapp.run(myapp.python, "-m", "myapp", "untrusted", store)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "refused:" in result.stdout
    assert "myapp.models.Order" in result.stdout and "register_module('myapp')" in result.stdout


def test_an_installed_app_runs_a_workflow_on_its_own_plain_class_across_two_processes(myapp: Installed) -> None:
    store = f"sqlite:///{myapp.outside / 'myapp.db'}"
    first = myapp.ok(myapp.python, "-m", "myapp", "trusted", store).split(maxsplit=2)
    assert first[0] == "waiting" and first[2].strip() == "['TEA', 'CUPS']"

    second = myapp.ok(myapp.python, "-m", "myapp", "pay", store, first[1])  # a new process reads the store
    assert second.strip() == "complete myapp.models Order ['TEA', 'CUPS'] 42"


# ---------------------------------------------------------------- the console script
SMOKE_FLOWS = """
from liteflow.core import *


class Double(StepBody):
    def run(self, context):
        context.workflow.data["result"] = context.workflow.data["value"] * 2


class Doubling(Workflow):
    def build(self, builder):
        builder.start_with(Double)
"""

SMOKE_CLIENT = """
import sys, time
from liteflow.core import configure_workflow_host
from smokeflows import Doubling

host = configure_workflow_host(persistence_service=sys.argv[1])  # never started: the worker runs it
host.register_workflow(Doubling())
workflow_id = host.start_workflow("Doubling", data={"value": 21})
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    instance = host.get_workflow_instance(workflow_id)
    if instance.is_finished:
        break
    time.sleep(0.1)
print(instance.status.value, instance.data["result"])
"""


def test_the_console_script_is_installed(installed: Installed) -> None:
    help_text = installed.ok("liteflow", "--help")
    for command in ("worker", "list", "show", "graph", "retry"):
        assert f"  {command} " in help_text
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert installed.ok("liteflow", "--version").strip() == f"liteflow, version {version}"
    assert "worker" in installed.ok(installed.python, "-m", "liteflow", "--help")


def test_a_liteflow_worker_runs_a_workflow_and_stops_on_sigterm(installed: Installed) -> None:
    (installed.outside / "smokeflows.py").write_text(SMOKE_FLOWS)
    (installed.outside / "smoke_client.py").write_text(SMOKE_CLIENT)
    store = f"sqlite:///{installed.outside / 'smoke.db'}"
    assert "s0" in installed.ok("liteflow", "graph", "smokeflows")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(installed.venv / "bin"), env.get("PATH", "")])
    log = installed.outside / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            ["liteflow", "worker", "smokeflows", "--store", store, "--poll-interval", "0.2"],
            cwd=installed.outside,
            env=env,
            stderr=stderr,
        )
    try:
        assert installed.ok(installed.python, "smoke_client.py", store).strip() == "complete 42"
        assert "liteflow worker ready: Doubling v1" in log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    listed = installed.ok("liteflow", "list", "--store", store, "--json")
    assert '"complete"' in listed


def test_the_dashboard_serves_its_templates_and_htmx_from_the_wheel(installed: Installed) -> None:
    (installed.outside / "smokeflows.py").write_text(SMOKE_FLOWS)
    store = f"sqlite:///{installed.outside / 'dashboard.db'}"
    installed.ok(
        installed.python,
        "-c",
        "from liteflow.core import configure_workflow_host; import smokeflows, sys; "
        "h = configure_workflow_host(sys.argv[1]); h.register_workflow(smokeflows.Doubling()); "
        "print(h.start_workflow('Doubling', 1, {'value': 1}))",
        store,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(installed.venv / "bin"), env.get("PATH", "")])
    server = subprocess.Popen(
        ["liteflow", "dashboard", "--store", store, "--app", "smokeflows", "--port", str(port)],
        cwd=installed.outside,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def fetch(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return str(response.read().decode())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch("/health")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        assert "Doubling v1" in fetch("/instances")
        assert "htmx" in fetch("/static/htmx.min.js")[:200]
        assert "workflow-graph" in fetch("/definitions")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
