"""The dashboard's HTTP behaviour without a browser: what scripts and monitoring see (/health,
/metrics, a Bearer token), and the guards (bad arguments, redirects, headers, paging)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from liteflow.core import (
    ConfigurationError,
    InvalidArgumentError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.dashboard import create_app

from .dashboard_flows import WORKFLOWS

TOKEN = "app-test-token"


@pytest.fixture
def host(tmp_path: Any) -> Iterator[WorkflowHost]:
    """A host on a SQLite file, not started: the instances stay where they were created."""
    made = configure_workflow_host(f"sqlite:///{tmp_path / 'app.db'}")
    for workflow in WORKFLOWS:
        made.register_workflow(workflow())
    yield made
    for resource in (made.queue, made.lock, made.persistence):
        resource.close()


def client(app: Any) -> _Sync:
    return _Sync(app)


class _Sync:
    """httpx's ASGI transport is async only: run each request on a fresh event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())

        async def call() -> Any:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as http:
                return await http.request(method, url, headers=headers, **kwargs)

        response = asyncio.run(call())
        self.cookies.update({cookie.name: cookie.value for cookie in response.cookies.jar})
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_create_app_arguments_are_checked(host: WorkflowHost) -> None:
    with pytest.raises(InvalidArgumentError, match="exactly one of store"):
        create_app()
    with pytest.raises(InvalidArgumentError, match="exactly one of store"):
        create_app(store="sqlite:///x.db", host=host)
    with pytest.raises(InvalidArgumentError, match="token must not be empty"):
        create_app(host=host, token="  ")
    with pytest.raises(ConfigurationError, match="memory://"):
        create_app(store="memory://")


def test_bearer_token_allows_actions_without_a_session(host: WorkflowHost) -> None:
    workflow_id = host.start_workflow("order", 1, {"order": "B-1"})
    web = client(create_app(host=host, token=TOKEN))
    wrong = web.post(f"/instances/{workflow_id}/suspend", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    done = web.post(f"/instances/{workflow_id}/suspend", headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/instances/{workflow_id}?done=suspend"
    assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.SUSPENDED
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    # A refused action says why: a step the definition lacks, a state that does not allow it.
    no_step = web.post(f"/instances/{workflow_id}/retry", headers=bearer, data={"step": "7"})
    assert no_step.status_code == 400
    assert "7" in no_step.text
    host.resume_workflow(workflow_id)
    not_now = web.post(f"/instances/{workflow_id}/resume", headers=bearer)
    assert not_now.status_code == 409
    assert web.post("/instances/no-such-id/resume", headers=bearer).status_code == 404


def test_login_renews_the_session_and_only_redirects_on_site(host: WorkflowHost) -> None:
    web = client(create_app(host=host, token=TOKEN))
    form = web.get("/login")
    before = web.cookies["liteflow_session"]
    assert "httponly" in form.headers["set-cookie"].lower()
    assert "samesite=strict" in form.headers["set-cookie"].lower()
    signed = web.post("/login", data={"csrf": _csrf(form.text), "token": TOKEN, "next": "//evil.example/x"})
    assert signed.status_code == 303
    assert signed.headers["location"] == "/"
    assert web.cookies["liteflow_session"] != before  # a session id known before login is worth nothing after
    page = web.get("/")
    assert "Sign out" in page.text
    # The old session id is gone with its CSRF token.
    stale = client(create_app(host=host, token=TOKEN))
    stale.cookies["liteflow_session"] = before
    assert "Sign out" not in stale.get("/").text


def test_pages_carry_protective_headers(host: WorkflowHost) -> None:
    response = client(create_app(host=host)).get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_no_request_names_a_file(host: WorkflowHost) -> None:
    web = client(create_app(host=host))
    assert web.get("/static/htmx.min.js").status_code == 200
    paths = ("/static/../_app.py", "/static/%2e%2e/_app.py", "/static/..%2f_app.py", "/static/../templates/base.html")
    for path in paths:
        response = web.get(path)
        assert response.status_code == 404, path
        assert "create_app" not in response.text


def test_health_and_metrics(host: WorkflowHost) -> None:
    web = client(create_app(host=host))
    health = web.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["ok"] is True
    assert body["store"] == {"ok": True, "error": None}
    assert "persistence" in body["host"]["components"]
    metrics = web.get("/metrics")
    assert metrics.status_code == 200  # prometheus_client is in the test extra
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "python_info" in metrics.text or "process_" in metrics.text or "liteflow_" in metrics.text


def test_paging_newest_first(host: WorkflowHost) -> None:
    ids = [host.start_workflow("quick", 1, {"n": i}) for i in range(120)]
    web = client(create_app(host=host))
    first = web.get("/instances")
    assert "1–50 of 120, newest first" in first.text
    shown = re.findall(r'data-id="([0-9a-f]+)"', first.text)
    stored = {i.id: i for i in host.query_workflows(limit=1000)}
    order = sorted(ids, key=lambda i: (stored[i].create_time, i), reverse=True)
    assert shown == order[:50]
    middle = web.get("/instances?page=2")
    assert re.findall(r'data-id="([0-9a-f]+)"', middle.text) == order[50:100]
    last = web.get("/instances?page=3")
    assert "101–120 of 120" in last.text
    assert re.findall(r'data-id="([0-9a-f]+)"', last.text) == order[100:]
    beyond = web.get("/instances?page=9")
    assert beyond.status_code == 200 and "data-id" not in beyond.text
    assert web.get("/instances?page=0").status_code == 400
    assert web.get("/instances?status=lost").status_code == 400
    since = web.get("/instances?since=1h&workflow=quick")
    assert "of 120" in since.text
    assert "No workflows match" in web.get("/instances?workflow=order").text


def test_overview_counts_by_status(host: WorkflowHost) -> None:
    for i in range(3):
        host.start_workflow("quick", 1, {"n": i})
    suspended = host.start_workflow("order", 1, {"order": "S"})
    host.suspend_workflow(suspended)
    page = client(create_app(host=host)).get("/").text
    counts = dict(re.findall(r'data-status="(\w+)".*?class="number">([\d,]+)<', page, flags=re.S))
    assert counts == {"runnable": "3", "suspended": "1", "complete": "0", "terminated": "0"}


def test_mounted_in_another_application(host: WorkflowHost) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    workflow_id = host.start_workflow("order", 1, {"order": "M-1"})
    outer = Starlette(routes=[Mount("/ops/liteflow", app=create_app(host=host, token=TOKEN))])
    web = client(outer)
    page = web.get("/ops/liteflow/instances")
    assert page.status_code == 200
    assert "path=/ops/liteflow;" in page.headers["set-cookie"].lower()
    assert f'href="/ops/liteflow/instances/{workflow_id}"' in page.text
    assert 'src="/ops/liteflow/static/htmx.min.js"' in page.text
    assert not re.search(r'(href|src|action|hx-get)="/(?!ops/liteflow)', page.text)
    assert web.get("/ops/liteflow/static/htmx.min.js").status_code == 200
    login = web.get("/ops/liteflow/login?next=/instances")
    signed = web.post("/ops/liteflow/login", data={"csrf": _csrf(login.text), "token": TOKEN, "next": "/instances"})
    assert signed.headers["location"] == "/ops/liteflow/instances"
    csrf = _csrf(web.get("/ops/liteflow/").text)
    done = web.post(f"/ops/liteflow/instances/{workflow_id}/suspend", data={"csrf": csrf})
    assert done.status_code == 303
    assert done.headers["location"] == f"/ops/liteflow/instances/{workflow_id}?done=suspend"
    assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.SUSPENDED


def test_nested_containers_are_laid_out_without_overlap(tmp_path: Any) -> None:
    import json

    from liteflow.core import workflow_graph
    from liteflow.dashboard._drawing import draw_graph

    from .dashboard_flows import NestedWorkflow

    document = workflow_graph(NestedWorkflow(), "json")
    drawing = draw_graph(document)
    parsed = json.loads(document)
    assert len(drawing.nodes) == len(parsed["nodes"])
    assert len(drawing.edges) == len(parsed["edges"])
    assert len(drawing.boxes) == len(parsed["subgraphs"]) >= 3
    assert any(edge.kind == "loop" for edge in drawing.edges)
    for node in drawing.nodes:
        assert node.x >= 0 and node.x + drawing.node_w <= drawing.width
        assert node.y >= 0 and node.y + drawing.node_h <= drawing.height
    for a in drawing.nodes:
        for b in drawing.nodes:
            if a is not b:
                apart_x = a.x + drawing.node_w <= b.x or b.x + drawing.node_w <= a.x
                apart_y = a.y + drawing.node_h <= b.y or b.y + drawing.node_h <= a.y
                assert apart_x or apart_y, (a.label, b.label)
    for box in drawing.boxes:
        assert box.x >= 0 and box.x + box.w <= drawing.width + 40
        assert box.y >= 0 and box.y + box.h <= drawing.height
    host = configure_workflow_host(f"sqlite:///{tmp_path / 'nested.db'}")
    host.register_workflow(NestedWorkflow())
    try:
        page = client(create_app(host=host)).get("/definitions")
        assert page.status_code == 200
        assert page.text.count('class="node ') == len(parsed["nodes"])
    finally:
        host.persistence.close()


def test_every_action_is_refused_in_read_only_mode(host: WorkflowHost) -> None:
    workflow_id = host.start_workflow("order", 1, {"order": "R-1"})
    web = client(create_app(host=host))
    csrf = _csrf(web.get("/events").text)
    posts = [f"/instances/{workflow_id}/{action}" for action in ("suspend", "resume", "terminate", "retry")]
    for path in [*posts, "/events/publish", "/login"]:
        refused = web.post(path, data={"csrf": csrf, "name": "approved", "key": "R-1", "token": "x"})
        assert refused.status_code == 403, path
        assert "read-only" in refused.text
    assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
    assert host.persistence.recent_events(10) == []


def test_sessions_expire_and_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from liteflow.dashboard import _security

    sessions = _security.Sessions("token")
    session = sessions.create()
    assert sessions.get(session.id) is session
    assert sessions.get("forged") is None
    session.last_used -= _security.SESSION_LIFETIME + 1
    assert sessions.get(session.id) is None
    monkeypatch.setattr(_security, "MAX_SESSIONS", 10)
    made = [sessions.create() for _ in range(25)]
    assert sessions.get(made[-1].id) is made[-1]
    assert sum(1 for s in made if sessions.get(s.id) is not None) <= 10
    assert not sessions.bearer_matches("Bearer wrong") and sessions.bearer_matches("bearer token")


class _Count(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["i"] += 1


class _Counting(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: None).while_(lambda data, context: data["i"] < 30).do(
            lambda block: block.start_with(_Count).name("count")
        )


def test_the_instance_page_lists_the_folded_rounds_of_a_loop(host: WorkflowHost) -> None:
    host.register_workflow(_Counting())
    workflow_id = host.start_workflow("_Counting", data={"i": 0})
    host.run_until_idle()
    page = client(create_app(host=host)).get(f"/instances/{workflow_id}").text
    table = page[page.index('<table id="compacted">') :]
    assert "<td>count (#2)</td><td>29</td><td>complete 29</td><td>0</td>" in table[: table.index("</table>")]
