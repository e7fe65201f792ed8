"""The dashboard's pages (GET only): overview, instances, one instance, definitions, events, and
the machine endpoints ``/health`` and ``/metrics``. Reads run in Starlette's thread pool, since
every store call blocks."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from liteflow.cli._render import Steps, compacted_steps, current_pointers, last_activity, timeline, waits
from liteflow.core import (
    Event,
    EventNotFoundError,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    ProviderUnavailableError,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
    workflow_graph,
)
from liteflow.core._providers import InstanceQuery
from liteflow.core._serialization import to_jsonable

from ._app import Dashboard, dashboard_of
from ._drawing import draw_chart, draw_graph

logger = logging.getLogger("liteflow")
PAGE_SIZE = 50
CHART_MINUTES = 60
RECENT_EVENTS = 50
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d{1,6})([smhdw])")


@dataclass(frozen=True)
class Filters:
    """The filters of the instances list, as ``liteflow list`` takes them."""

    status: WorkflowStatus | None = None
    workflow: str | None = None
    reference: str | None = None
    since: str | None = None
    page: int = 1

    @classmethod
    def parse(cls, request: Request) -> Filters:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in {s.value for s in WorkflowStatus}:
            choices = ", ".join(s.value for s in WorkflowStatus)
            raise InvalidArgumentError(f"status must be one of {choices}, got {status!r}")
        since = (params.get("since") or "").strip().lower() or None
        if since is not None:
            parse_duration(since)
        page_text = params.get("page") or "1"
        if not page_text.isdigit() or not 1 <= int(page_text) <= 10_000_000:
            raise InvalidArgumentError(f"page must be a positive whole number, got {page_text!r}")
        return cls(
            status=None if status is None else WorkflowStatus(status),
            workflow=(params.get("workflow") or "").strip() or None,
            reference=(params.get("reference") or "").strip() or None,
            since=since,
            page=int(page_text),
        )

    def query(self, now: datetime) -> InstanceQuery:
        created_from = None if self.since is None else now - parse_duration(self.since)
        return InstanceQuery(
            status=self.status,
            workflow_definition_id=self.workflow,
            reference=self.reference,
            created_from=created_from,
        )

    def url_query(self, **changes: Any) -> str:
        values = {
            "status": None if self.status is None else self.status.value,
            "workflow": self.workflow,
            "reference": self.reference,
            "since": self.since,
            "page": self.page,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "", 1)})


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h30m``, ``2d``, ``1w`` (as ``liteflow list --since`` takes them)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgumentError(f"since must be a duration like 30s, 15m, 1h30m, 2d or 1w, got {text!r}")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total


def _instance_rows(dashboard: Dashboard, instances: list[WorkflowInstance]) -> list[dict[str, Any]]:
    steps = Steps(dashboard.host)
    return [
        {
            "id": i.id,
            "workflow": i.workflow_definition_id,
            "version": i.version,
            "status": i.status.value,
            "reference": i.reference,
            "current": [steps.label(i, p.step_id) for p in current_pointers(i)],
            "created": i.create_time,
            "last_activity": last_activity(i),
        }
        for i in instances
    ]


def list_page(dashboard: Dashboard, filters: Filters) -> dict[str, Any]:
    """One page of instances, newest first, and the paging around it: one indexed count and one
    indexed page, read from whichever end of the index is nearer (a store walks over the index
    entries it skips, so the pages in the middle of a large store cost the most)."""
    persistence = dashboard.host.persistence
    query = filters.query(dashboard.host.options.clock())
    total = persistence.count_instances(query)
    offset = (filters.page - 1) * PAGE_SIZE
    instances: list[WorkflowInstance] = []
    if offset < total // 2:
        instances = persistence.query_instances(replace(query, limit=PAGE_SIZE, offset=offset, newest_first=True))
    elif offset < total:
        # In the older half, read from the oldest end: the store then skips fewer index entries.
        size = min(PAGE_SIZE, total - offset)
        instances = persistence.query_instances(replace(query, limit=size, offset=total - offset - size))[::-1]
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "rows": _instance_rows(dashboard, instances),
        "total": total,
        "first": 0 if not instances else (filters.page - 1) * PAGE_SIZE + 1,
        "last": (filters.page - 1) * PAGE_SIZE + len(instances),
        "page": filters.page,
        "pages": pages,
        "filters": filters,
        "statuses": [s.value for s in WorkflowStatus],
        "newer": filters.url_query(page=filters.page - 1) if filters.page > 1 else None,
        "older": filters.url_query(page=filters.page + 1) if filters.page < pages else None,
        "self_query": filters.url_query(),
    }


def overview(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    persistence = dashboard.host.persistence
    counts = {s.value: persistence.count_instances(InstanceQuery(status=s)) for s in WorkflowStatus}
    now = dashboard.host.options.clock().replace(second=0, microsecond=0) + timedelta(minutes=1)
    activity = persistence.workflow_activity(now - timedelta(minutes=CHART_MINUTES), now, timedelta(minutes=1))
    context = {"counts": counts, "total": sum(counts.values()), "chart": draw_chart(activity)}
    return dashboard.render(request, "overview.html", context)


def instances(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "instances.html", list_page(dashboard, Filters.parse(request)))


def instance_rows(request: Request) -> HTMLResponse:
    """The table of the list page alone: what the page's live refresh fetches."""
    dashboard = dashboard_of(request)
    return dashboard.render(request, "_rows.html", list_page(dashboard, Filters.parse(request)))


def _data_json(value: Any, what: str) -> str:
    try:
        return json.dumps(to_jsonable(value, what), indent=2, ensure_ascii=False, sort_keys=False)
    except LiteFlowError as error:
        return f"(cannot be shown: {error})"


def instance(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    host = dashboard.host
    found = host.get_workflow_instance(request.path_params["workflow_id"])
    steps = Steps(host)
    definition = steps.definition(found)
    graph = None if definition is None else draw_graph(workflow_graph(definition, "json", instance=found))
    try:
        user_actions = host.get_open_user_actions(instance_id=found.id)
    except LiteFlowError:
        user_actions = []
    step_choices = (
        [(s.id, steps.label(found, s.id)) for s in definition.steps]
        if definition is not None
        else sorted({(p.step_id, steps.label(found, p.step_id)) for p in found.execution_pointers})
    )
    context = {
        "instance": found,
        "definition_known": definition is not None,
        "graph": graph,
        "current": [steps.label(found, p.step_id) for p in current_pointers(found)],
        "timeline": timeline(found, steps),
        "compacted": compacted_steps(found, steps),
        "waits": waits(found, steps),
        "errors": host.get_workflow_errors(found.id),
        "data_json": _data_json(found.data, "data"),
        "user_actions": user_actions,
        "step_choices": step_choices,
        "last_activity": last_activity(found),
        "notice": request.query_params.get("done"),
    }
    return dashboard.render(request, "instance.html", context)


def definitions(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    found = sorted(dashboard.host.registry.definitions(), key=lambda d: (d.id, d.version))
    drawn = [(d, draw_graph(workflow_graph(d, "json"))) for d in found]
    return dashboard.render(request, "definitions.html", {"definitions": drawn})


def events(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    persistence = dashboard.host.persistence
    now = dashboard.host.options.clock()
    pending = []
    for event_id in persistence.get_runnable_events(now)[:100]:
        try:
            pending.append(persistence.get_event(event_id))
        except EventNotFoundError:
            continue  # delivered (and purged) between the two reads
    name = (request.query_params.get("name") or "").strip()
    key = (request.query_params.get("key") or "").strip()
    matching = []
    if name:
        matching = persistence.get_events(name, key, now - timedelta(days=30))[-100:][::-1]
    try:
        recent: list[Event] | None = persistence.recent_events(RECENT_EVENTS)
    except InvalidOperationError:
        recent = None  # a third-party store that cannot list them
    context = {
        "recent": None if recent is None else [(e, _data_json(e.event_data, "event_data")) for e in recent],
        "pending": [(e, _data_json(e.event_data, "event_data")) for e in pending],
        "matching": [(e, _data_json(e.event_data, "event_data")) for e in matching],
        "name": name,
        "key": key,
    }
    return dashboard.render(request, "events.html", context)


def login_form(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "login.html", {"failed": False, "request_next": request.query_params.get("next")})


def health(request: Request) -> JSONResponse:
    """``{"ok": ..., "store": ..., "host": {...}}``: 200 when the store answers, else 503."""
    dashboard = dashboard_of(request)
    try:
        dashboard.host.persistence.query_instances(InstanceQuery(limit=1))
        store_ok, problem = True, None
    except LiteFlowError as error:
        store_ok, problem = False, str(error)
    report = dashboard.host.health().as_dict()
    body = {"ok": store_ok, "store": {"ok": store_ok, "error": problem}, "host": report}
    return JSONResponse(body, status_code=200 if store_ok else 503)


def metrics(request: Request) -> Response:
    """The Prometheus registry (the default one, where :func:`liteflow.metrics.enable_metrics` counts)."""
    try:
        import prometheus_client
    except ImportError:
        return Response(
            'metrics need prometheus_client: pip install "liteflow-engine[prometheus]"\n',
            status_code=404,
            media_type="text/plain",
        )
    registry = getattr(request.app.state, "metrics_registry", None) or prometheus_client.REGISTRY
    return Response(prometheus_client.generate_latest(registry), media_type=prometheus_client.CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [
        Route("/", overview, name="overview"),
        Route("/instances", instances, name="instances"),
        Route("/instances/rows", instance_rows, name="instance_rows"),
        Route("/instances/{workflow_id}", instance, name="instance"),
        Route("/definitions", definitions, name="definitions"),
        Route("/events", events, name="events"),
        Route("/login", login_form, name="login_form"),
        Route("/health", health, name="health"),
        Route("/metrics", metrics, name="metrics"),
    ]


def _error_page(request: Request, status: int, message: str) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "error.html", {"status": status, "message": message}, status_code=status)


async def _not_found(request: Request, error: Exception) -> Response:
    return _error_page(request, 404, str(error) or "no such page")


async def _bad_request(request: Request, error: Exception) -> Response:
    return _error_page(request, 400, str(error))


async def _unavailable(request: Request, error: Exception) -> Response:
    logger.warning("dashboard: the store is unavailable: %s", error)
    return _error_page(request, 503, f"the store is unavailable: {error}")


async def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return _error_page(request, error.status_code, str(error.detail))


def error_handlers() -> dict[Any, Any]:
    return {
        WorkflowNotFoundError: _not_found,
        InvalidArgumentError: _bad_request,
        ProviderUnavailableError: _unavailable,
        HTTPException: _http,
    }
