"""A host process for the metrics test: runs the workflows of ``tests/observability/flows.py`` on
a SQLite file and serves its metrics at ``/metrics``; prints ``ready`` once serving, stops on stdin EOF."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from flows import Fails, Greets

from liteflow.core import configure_workflow_host
from liteflow.metrics import enable_metrics, serve_metrics


def main() -> None:
    store, port = sys.argv[1], int(sys.argv[2])
    host = configure_workflow_host(persistence_service=store, poll_interval=timedelta(milliseconds=100))
    host.register_workflow(Greets())
    host.register_workflow(Fails())
    enable_metrics(host)
    server = serve_metrics(port)
    host.start()
    print("ready", flush=True)
    sys.stdin.read()  # the test closes stdin to stop us
    host.stop()
    server.shutdown()


if __name__ == "__main__":
    main()
