"""How a node process of the cluster tests waits for its end."""

from __future__ import annotations

import os
import threading


def wait_for_stop(stop: threading.Event) -> None:
    """Returns once ``stop`` is set (the node's SIGTERM handler sets it) or once the process that
    started this one is gone: a killed test run must not leave nodes running that hold its database
    connections and keep working on its stores."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            return
