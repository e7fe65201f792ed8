"""``create_app``: the dashboard as a Starlette ASGI application, and what its pages share."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from liteflow.core import ConfigurationError, InvalidArgumentError, WorkflowHost, configure_workflow_host

from ._security import COOKIE, Session, Sessions

try:
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f'the dashboard needs {error.name}: pip install "liteflow-engine[dashboard]"', name=error.name
    ) from error

logger = logging.getLogger("liteflow")
_HERE = os.path.dirname(os.path.abspath(__file__))
# Pages are built by LiteFlow's own templates only; nothing a request says picks a file.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Dashboard:
    """What every page of one dashboard app uses: the host, the sessions and the templates."""

    def __init__(self, host: WorkflowHost, *, token: str | None, owns_host: bool, title: str) -> None:
        self.host = host
        self.sessions = Sessions(token)
        self.owns_host = owns_host
        self.title = title
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(_HERE, "templates")),
            autoescape=True,  # every value from the store is escaped, whatever the template's name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when

    def session(self, request: Request) -> tuple[Session, bool]:
        """This browser's session, and whether it is new (its cookie must then be set)."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            return session, False
        return self.sessions.create(), True

    def render(
        self, request: Request, template: str, context: Mapping[str, Any], *, status_code: int = 200
    ) -> HTMLResponse:
        session, new = self.session(request)
        page = self.templates.get_template(template).render(
            **context,
            title=self.title,
            root=root_path(request),
            path=site_path(request),
            csrf=session.csrf,
            signed_in=session.authenticated,
            read_only=self.sessions.read_only,
        )
        response = HTMLResponse(page, status_code=status_code)
        if new:
            set_session_cookie(request, response, session)
        return response

    def close(self) -> None:
        if not self.owns_host:
            return
        for resource in (self.host.queue, self.host.lock, self.host.persistence):
            try:
                resource.close()
            except Exception:
                logger.debug("closing %r failed", resource, exc_info=True)


def root_path(request: Request) -> str:
    """Where the dashboard is mounted ("" at the root of its own server): every link starts with it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def site_path(request: Request) -> str:
    """The request's path within the dashboard (without the mount point)."""
    path, root = request.url.path, root_path(request)
    return (path[len(root) :] or "/") if root and path.startswith(root) else path


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=root_path(request) or "/",
    )


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


class _SecurityHeaders:
    """Adds the headers that stop the browser from running or framing anything the pages did not
    ship (a second line of defence behind escaping)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    *,
    store: str | None = None,
    host: WorkflowHost | None = None,
    token: str | None = None,
    queue: str | None = None,
    lock: str | None = None,
    title: str = "LiteFlow",
) -> Starlette:
    """The dashboard as an ASGI application, to serve with uvicorn or mount in a Starlette or
    FastAPI application (``app.mount("/liteflow", create_app(host=host))``).

    Args:
        store: A store URL (``sqlite:///app.db``, ``postgresql://...``): the dashboard opens its own
            host on it, runs no steps, and closes it when the application shuts down.
        host: Or a host of yours (started or not); its registered definitions are the ones drawn,
            and the actions go through it.
        token: The secret that allows actions (suspend, resume, terminate, retry, publish). Without
            one the dashboard is read-only and refuses every action with HTTP 403.
        queue: With ``store``: the queue URL your workers use, so they hear of actions at once.
        lock: With ``store``: the lock URL your workers use.
        title: Shown in the page header.

    Raises:
        InvalidArgumentError: Neither or both of ``store`` and ``host``, or an empty token.
    """
    if (store is None) == (host is None):
        raise InvalidArgumentError("create_app takes exactly one of store=URL or host=WorkflowHost")
    if token is not None and not token.strip():
        raise InvalidArgumentError("the dashboard token must not be empty (pass None for read-only)")
    if store is not None and store.startswith("memory:"):
        raise ConfigurationError("memory:// lives inside one process; give the dashboard the store your workers use")
    owned = host is None
    if host is None:
        assert store is not None
        host = configure_workflow_host(store, queue, lock)
    dashboard = Dashboard(host, token=token, owns_host=owned, title=title)

    from . import _actions, _pages  # the routes need the names above

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            dashboard.close()

    routes = [
        *_pages.routes(),
        *_actions.routes(),
        Mount("/static", app=StaticFiles(directory=os.path.join(_HERE, "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=_pages.error_handlers())
    app.state.dashboard = dashboard
    app.add_middleware(_SecurityHeaders)
    return app


__all__ = ["create_app"]
