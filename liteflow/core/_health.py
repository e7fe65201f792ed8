"""What the host knows about its own health: each provider and each group of background threads.

The host's loops and calls report every provider call's outcome here; :meth:`WorkflowHost.health`
reads it. A provider is healthy when its last call answered (a ``WorkflowNotFoundError`` is an
answer; a refused connection or a timeout is not). An outage is logged once when it starts and once
when it ends, with the number of failed calls, however many threads run into it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import Any

from ._backoff import OutageLog
from ._errors import LiteFlowError, ProviderError
from ._models import utcnow

logger = logging.getLogger("liteflow")

PROVIDERS = ("persistence", "queue", "lock")
WORKER_GROUPS = ("workflow_workers", "event_workers", "poller", "timer")


@dataclass(frozen=True)
class ComponentHealth:
    """The state of one part of a host.

    Attributes:
        ok: False while its last call failed (a provider) or while one of its threads failed or is
            dead (a worker group).
        since: When it entered its current state (UTC); for a part that never failed, when the
            host was created.
        last_error: The most recent failure, kept after recovery for diagnosis; None if it never
            failed.
        failures: Failed calls in the current outage (0 when ok).
        details: What a provider with several servers says of each (its optional
            ``health_details()`` method; a Redis lock on Redlock or Sentinel, say); None otherwise.
    """

    ok: bool
    since: datetime
    last_error: str | None = None
    failures: int = 0
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Health:
    """A snapshot of a host's health, from :meth:`WorkflowHost.health`.

    Attributes:
        ok: True when every component is ok: the readiness signal.
        components: ``persistence``, ``queue`` and ``lock``, plus, while the host is started,
            ``workflow_workers``, ``event_workers``, ``poller`` and ``timer``.
        live: False only while one of the host's threads is not running (the supervisor restarts
            one that dies within about a second): the liveness signal. A backend outage leaves it
            True, since restarting the process would not help.
    """

    ok: bool
    components: dict[str, ComponentHealth]
    live: bool = True

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for a health endpoint."""
        return {
            "ok": self.ok,
            "live": self.live,
            "components": {
                name: {
                    "ok": part.ok,
                    "since": part.since.isoformat(),
                    "last_error": part.last_error,
                    "failures": part.failures,
                    **({} if part.details is None else {"details": part.details}),
                }
                for name, part in self.components.items()
            },
        }


class _Component:
    """The mutable state behind one :class:`ComponentHealth`; thread-safe."""

    def __init__(self, name: str, outage: OutageLog | None) -> None:
        self._mutex = threading.Lock()
        self._outage = outage
        self._state = ComponentHealth(ok=True, since=utcnow())
        self.name = name

    def failed(self, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else _describe(error)
        with self._mutex:
            state = self._state
            since = utcnow() if state.ok else state.since
            self._state = ComponentHealth(False, since, message, state.failures + 1)
        if self._outage is not None and isinstance(error, BaseException):
            self._outage.failed(error)

    def succeeded(self) -> None:
        if self._state.ok:  # the common case, read without the mutex: a stale read only delays by one call
            return
        with self._mutex:
            state = self._state
            if state.ok:
                return
            self._state = ComponentHealth(True, utcnow(), state.last_error)
        if self._outage is not None:
            self._outage.recovered()

    def snapshot(self) -> ComponentHealth:
        return self._state


class HealthMonitor:
    """The host's record of provider and worker-group health."""

    def __init__(self) -> None:
        self._parts = {name: _Component(name, OutageLog(f"the {name} provider", logger)) for name in PROVIDERS}
        self._parts.update({name: _Component(name, None) for name in WORKER_GROUPS})

    def failed(self, component: str, error: BaseException | str) -> None:
        """Record a failed call of a provider, or a failure of a worker group."""
        self._parts[component].failed(error)

    def succeeded(self, component: str) -> None:
        """Record a call that answered, or a worker group's loop that went round cleanly."""
        part = self._parts[component]
        if not part._state.ok:  # several times per item: the healthy case costs no further call
            part.succeeded()

    def snapshot(
        self, groups: dict[str, list[str]] | None, *, live: bool = True, providers: dict[str, object] | None = None
    ) -> Health:
        """The current health; ``groups`` maps each worker group to the names of its dead threads
        (None when the host is not started, which leaves the groups out); ``live`` is False if a
        thread outside the groups (the supervisor) is dead; ``providers`` are asked for details."""
        components = {name: self._parts[name].snapshot() for name in PROVIDERS}
        for name, provider in (providers or {}).items():
            details = provider_details(provider)
            if details is not None:
                components[name] = replace(components[name], details=details)
        for name, dead in (groups or {}).items():
            part = self._parts[name].snapshot()
            if dead:
                part = ComponentHealth(False, part.since, f"thread(s) not running: {', '.join(dead)}", part.failures)
                live = False
            components[name] = part
        return Health(ok=all(part.ok for part in components.values()), components=components, live=live)


def provider_failure(error: BaseException, providers: dict[str, object]) -> str | None:
    """The provider (``persistence``, ``queue`` or ``lock``) whose call raised ``error`` as an
    outage, or None if it is an answer (a LiteFlow error other than a ``ProviderError``) or did
    not come from a provider.

    The providers users pass in stay the objects they gave (tests and applications compare them),
    so calls are not wrapped; the traceback tells which provider's method the error escaped from.
    """
    if isinstance(error, LiteFlowError) and not isinstance(error, ProviderError):
        return None
    traceback: TracebackType | None = error.__traceback__
    while traceback is not None:
        owner = traceback.tb_frame.f_locals.get("self")
        for name, provider in providers.items():
            if owner is provider:
                return name
        traceback = traceback.tb_next
    return None


def provider_details(provider: object) -> dict[str, Any] | None:
    """What a provider's optional ``health_details()`` says (each server of a Redlock, the master
    a Sentinel names); None if it has none. A provider whose method fails gets the error instead:
    a health report never raises."""
    method = getattr(provider, "health_details", None)
    if not callable(method):
        return None
    try:
        details = method()
    except Exception as error:  # a probe must answer whatever the provider does
        return {"error": _describe(error)}
    return dict(details) if isinstance(details, dict) else None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
