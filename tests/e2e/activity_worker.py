"""A remote activity worker for tests/e2e/test_activities.py: it claims one activity, prints the
claim as a JSON line, then blocks until it is killed (the test SIGKILLs it while it holds the claim).

Usage: activity_worker.py STORE_URL QUEUE_URL LOCK_URL ACTIVITY WORKER_ID LEASE_SECONDS
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import timedelta

from liteflow.core import configure_workflow_host


def main() -> None:
    store, queue, lock, activity, worker, lease = sys.argv[1:7]
    # A host that is never started: its calls go straight to the shared store, queue and lock.
    host = configure_workflow_host(persistence_service=store, queue_service=queue, lock_service=lock)
    claim = host.get_pending_activity(activity, worker, timeout=30, lease=timedelta(seconds=float(lease)))
    if claim is None:
        print(json.dumps({"error": "no activity to claim"}), flush=True)
        sys.exit(1)
    print(json.dumps({"token": claim.token, "parameters": claim.parameters}), flush=True)
    threading.Event().wait()  # "working" until killed


if __name__ == "__main__":
    main()
