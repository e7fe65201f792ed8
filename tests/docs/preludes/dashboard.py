# requires: host
"""``app``, a Starlette application to mount the dashboard in, over the running ``host``.

When the page is done, the dashboard mounted at ``/liteflow`` is asked for its overview and its
health through Starlette's test client."""

import os

from starlette.applications import Starlette
from starlette.testclient import TestClient

app = Starlette()


def _the_mounted_dashboard_answers() -> None:
    with TestClient(app) as client:
        assert client.get("/liteflow/").status_code == 200
        assert client.get("/liteflow/health").status_code == 200


teardown.append(_the_mounted_dashboard_answers)
