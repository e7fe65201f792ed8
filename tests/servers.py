"""Test servers the project installs and starts itself: a MongoDB wire-protocol server and Azurite.

Neither MongoDB nor Azure Storage has a Debian package here, so the fixtures below bring their own:

``mongo_url``
    SecantusDB (``pip install secantusdb``, a MongoDB-compatible server written in Python) on a
    free loopback port with a temporary storage directory.
``azure_connection_string``
    Azurite, the Azure Storage emulator (``npm install azurite`` into ``.cache/azurite`` of the
    repository), blob and queue services on free loopback ports, data in memory only.

Each is installed on first use if missing, started once per test session, waited for, and
terminated at the end. If installing or starting fails the tests that need it are skipped with
the reason, except when ``CI=true``: CI must run every test, so they fail instead.
``LITEFLOW_MONGO_URL`` / ``AZURE_STORAGE_CONNECTION_STRING`` in the environment point the tests
at servers already running instead.

Run as a script, ``python tests/servers.py mongo|azurite`` starts one in the foreground and
prints its URL or connection string: handy for running the samples by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECANTUS_REQUIREMENT = "secantusdb==0.7.0b3"
AZURITE_PREFIX = ROOT / ".cache" / "azurite"
AZURITE_BIN = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ServerUnavailable(Exception):
    """A test server could not be installed or started."""


def azurite_connection_string(blob_port: int = 10000, queue_port: int = 10001, host: str = "127.0.0.1") -> str:
    """The well-known development account's connection string for Azurite on ``host``."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/devstoreaccount1;"
        f"QueueEndpoint=http://{host}:{queue_port}/devstoreaccount1;"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"server exited with {process.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServerUnavailable(f"nothing listening on 127.0.0.1:{port} after {seconds}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ServerUnavailable(f"could not install {what}: {error}") from error
    if result.returncode != 0:
        raise ServerUnavailable(f"could not install {what} ({' '.join(command)}): {result.stderr[-2000:]}")


# -- SecantusDB -----------------------------------------------------------------------------------


def _secantus_installed() -> bool:
    probe = [sys.executable, "-c", "import secantus.cli"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def install_secantus() -> None:
    if not _secantus_installed():
        _run([sys.executable, "-m", "pip", "install", "--quiet", SECANTUS_REQUIREMENT], SECANTUS_REQUIREMENT, 600)


def start_secantus(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start SecantusDB on a free port; return the process and its ``mongodb://`` URL."""
    install_secantus()
    port = free_port()
    log = workdir / "secantus.log"
    # Through the interpreter, not the secantusd-py script, which may not be on PATH in a venv.
    command = [
        sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())",
        "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(workdir / "data"),
        "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_for_port(port, process, 60, log)
    except BaseException:
        stop(process)
        raise
    return process, f"mongodb://127.0.0.1:{port}/"


# -- Azurite --------------------------------------------------------------------------------------


def install_azurite() -> None:
    if AZURITE_BIN.exists():
        return
    if shutil.which("npm") is None:
        raise ServerUnavailable("npm is not installed, so Azurite cannot be (apt-get install npm)")
    AZURITE_PREFIX.mkdir(parents=True, exist_ok=True)
    _run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(AZURITE_PREFIX), "azurite"],
         "azurite", 600)  # fmt: skip
    if not AZURITE_BIN.exists():
        raise ServerUnavailable(f"npm install azurite did not create {AZURITE_BIN}")


def start_azurite(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Azurite's blob and queue services (and its table service, which cannot be left out of
    the combined command) on free ports; return the process and the connection string."""
    install_azurite()
    blob, queue, table = free_port(), free_port(), free_port()
    log = workdir / "azurite.log"
    # --inMemoryPersistence refuses --location, so the working directory is a temporary one.
    # --skipApiVersionCheck: the current SDKs send an API version newer than Azurite knows.
    command = [
        str(AZURITE_BIN), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
        "--extentMemoryLimit", "256",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_for_port(blob, process, 60, log)
        wait_for_port(queue, process, 60, log)
    except BaseException:
        stop(process)
        raise
    return process, azurite_connection_string(blob, queue)


# -- fixtures -------------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every test server must start)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    given = os.environ.get("LITEFLOW_TEST_MONGO_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="liteflow-secantus-") as workdir:
        try:
            process, url = start_secantus(Path(workdir))
        except ServerUnavailable as error:
            _unavailable(f"MongoDB test server unavailable: {error}")
            return
        try:
            yield url
        finally:
            stop(process)


@pytest.fixture(scope="session")
def azure_connection_string() -> Iterator[str]:
    given = os.environ.get("LITEFLOW_TEST_AZURE_CONNECTION_STRING")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="liteflow-azurite-") as workdir:
        try:
            process, connection_string = start_azurite(Path(workdir))
        except ServerUnavailable as error:
            _unavailable(f"Azurite unavailable: {error}")
            return
        try:
            yield connection_string
        finally:
            stop(process)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("mongo", "azurite"):
        print("usage: python tests/servers.py mongo|azurite", file=sys.stderr)
        return 2

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the server on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="liteflow-server-") as workdir:
        start = start_secantus if argv[0] == "mongo" else start_azurite
        process, address = start(Path(workdir))
        print(address, flush=True)
        try:
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
