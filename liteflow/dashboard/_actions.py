"""The dashboard's actions (POST only): sign in and out, suspend, resume, terminate, retry, and
publish an event. Each goes through the host's own method, as ``liteflow`` commands do.

Every action is refused with 403 unless a token is configured and this request carries it: as a
signed-in session plus that session's CSRF token in the form, or as an ``Authorization: Bearer``
header (a header a cross-site form cannot send, so it needs no CSRF token).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from liteflow.core import (
    InvalidArgumentError,
    LiteFlowError,
    ProviderUnavailableError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
)

from ._app import Dashboard, dashboard_of, root_path, set_session_cookie
from ._security import COOKIE, csrf_matches

_READ_ONLY = "the dashboard is read-only: start it with a token (--token or LITEFLOW_DASHBOARD_TOKEN) to allow actions"
_MAX_FIELD = 100_000  # characters of one form field (an event's data is the largest)


async def _form(request: Request) -> FormData:
    form = await request.form(max_files=0, max_fields=20)
    for value in form.values():
        if isinstance(value, str) and len(value) > _MAX_FIELD:
            raise HTTPException(413, f"a form field is longer than {_MAX_FIELD} characters")
    return form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def authorize(request: Request) -> tuple[Dashboard, FormData]:
    """The form of an action this request may take, or an HTTPException(403) saying why not."""
    dashboard = dashboard_of(request)
    form = await _form(request)
    sessions = dashboard.sessions
    if sessions.read_only:
        raise HTTPException(403, _READ_ONLY)
    if sessions.bearer_matches(request.headers.get("authorization")):
        return dashboard, form
    session = sessions.get(request.cookies.get(COOKIE))
    if not csrf_matches(session, _text(form, "csrf")):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")
    assert session is not None
    if not session.authenticated:
        raise HTTPException(403, "sign in with the dashboard token to change workflows")
    return dashboard, form


def _back(request: Request, path: str, **query: str) -> RedirectResponse:
    target = root_path(request) + path
    return RedirectResponse(f"{target}?{urlencode(query)}" if query else target, status_code=303)


def _control(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        dashboard, _ = await authorize(request)
        workflow_id = request.path_params["workflow_id"]
        method = getattr(dashboard.host, f"{name}_workflow")
        await _run(method, workflow_id)
        return _back(request, f"/instances/{workflow_id}", done=name)

    return endpoint


async def retry(request: Request) -> Response:
    dashboard, form = await authorize(request)
    workflow_id = request.path_params["workflow_id"]
    step_text = _text(form, "step")
    step: int | str | None = None if not step_text else int(step_text) if step_text.isdigit() else step_text
    compensate = _text(form, "compensate") == "on"
    if compensate and step is None:
        raise InvalidArgumentError("compensation needs a step to retry from")
    await _run(dashboard.host.retry_workflow, workflow_id, step, compensate=compensate)
    return _back(request, f"/instances/{workflow_id}", done="retry")


async def publish(request: Request) -> Response:
    dashboard, form = await authorize(request)
    name, key, data_text = _text(form, "name"), _text(form, "key"), _text(form, "data")
    if not name:
        raise InvalidArgumentError("an event needs a name")
    try:
        data = json.loads(data_text) if data_text else None
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"the event data is not JSON: {error}") from error
    await _run(dashboard.host.publish_event, name, key, data)
    return _back(request, "/events", name=name, key=key, done="published")


async def _run(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a host method off the event loop; a refusal becomes a 409 page naming the reason."""
    try:
        return await run_in_threadpool(method, *args, **kwargs)
    except (InvalidArgumentError, ProviderUnavailableError, WorkflowNotFoundError):
        raise  # 400, 503 and 404 pages (see _pages.error_handlers)
    except WorkflowNotRegisteredError as error:
        raise HTTPException(409, f"{error}; start the dashboard with --app MODULE to load your workflows") from error
    except LiteFlowError as error:
        raise HTTPException(409, str(error)) from error


def _safe_next(target: str) -> str:
    """Only a path on this site: a login link cannot send the user elsewhere."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login(request: Request) -> Response:
    dashboard = dashboard_of(request)
    form = await _form(request)
    sessions = dashboard.sessions
    if sessions.read_only:
        raise HTTPException(403, _READ_ONLY)
    session = sessions.get(request.cookies.get(COOKIE))
    if not csrf_matches(session, _text(form, "csrf")):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")
    assert session is not None
    if not sessions.token_matches(_text(form, "token")):
        context = {"failed": True, "request_next": _text(form, "next")}
        return dashboard.render(request, "login.html", context, status_code=403)
    fresh = sessions.renew(session, authenticated=True)
    response = _back(request, _safe_next(_text(form, "next") or "/"))
    set_session_cookie(request, response, fresh)
    return response


async def logout(request: Request) -> Response:
    dashboard = dashboard_of(request)
    form = await _form(request)
    session = dashboard.sessions.get(request.cookies.get(COOKIE))
    if not csrf_matches(session, _text(form, "csrf")):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")
    assert session is not None
    dashboard.sessions.drop(session)
    response = _back(request, "/")
    response.delete_cookie(COOKIE, path=root_path(request) or "/")
    return response


def routes() -> list[Route]:
    return [
        Route("/login", login, methods=["POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        *(
            Route(f"/instances/{{workflow_id}}/{name}", _control(name), methods=["POST"], name=name)
            for name in ("suspend", "resume", "terminate")
        ),
        Route("/instances/{workflow_id}/retry", retry, methods=["POST"], name="retry"),
        Route("/events/publish", publish, methods=["POST"], name="publish"),
    ]
