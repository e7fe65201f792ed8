"""Every tunable of the host, with its default, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from ._errors import ConfigurationError
from ._models import utcnow
from ._steps import ErrorBehavior, ErrorHandling, RetryPolicy


@dataclass(frozen=True)
class HostOptions:
    """The host's options, given as keywords to ``configure_workflow_host`` (or ``WorkflowHost``);
    each attribute below is one option, with its default."""

    poll_interval: timedelta = timedelta(seconds=5)
    """How often the store is polled for work that no queue item or timer announced (the safety
    net after a crash, or for work another node scheduled). Wake-ups do not wait for it."""

    max_concurrent_workflows: int = 4
    """Worker threads executing workflow steps, and the most turns of workflows run at once (an
    event worker that resumes a workflow goes on with its turn itself when one is free)."""

    event_workers: int = 2
    """Worker threads delivering published events (and going on with a workflow they resume)."""

    retry_interval: timedelta = timedelta(seconds=10)
    """Delay before a step with ``on_error(RETRY)`` and no interval of its own is retried."""

    default_error_behavior: ErrorHandling = RetryPolicy(  # noqa: RUF009 - frozen, so safe to share
        max_attempts=10, initial_interval=timedelta(seconds=1), max_interval=timedelta(minutes=5), jitter=0.1
    )
    """For steps and workflows that set none: bounded retries with backoff (about 8 minutes in
    all), then the workflow is suspended, to be resumed once the cause is fixed."""

    idle_timeout: timedelta = timedelta(seconds=1)
    """Longest a worker blocks on an empty queue before checking whether the host is stopping."""

    stop_timeout: timedelta = timedelta(seconds=10)
    """How long ``stop`` waits for running steps to finish."""

    provider_timeout: timedelta = timedelta(seconds=10)
    """The longest one call to a backend should wait for an answer before it raises
    ``ProviderUnavailableError``. Passed to the providers the host makes from URLs, unless the URL
    sets its own: PostgreSQL's ``statement_timeout`` (and half of it as ``connect_timeout``),
    Redis's ``socket_timeout`` (half of it: a command is retried once) and RabbitMQ's
    ``publish_timeout``. Providers given as instances keep the timeouts they were made with."""

    max_passes_per_turn: int = 100
    """Passes one worker makes over a workflow before letting others have a turn."""

    lock_retry_delay: timedelta = timedelta(milliseconds=5)
    """Delay before an event delivery retries when the workflow is busy running a step."""

    max_payload_bytes: int | None = 2 * 1024 * 1024
    """Largest workflow data, step persistence data or event data, in bytes of stored JSON (2 MB by
    default; None for no limit). Larger data raises :class:`PayloadTooLargeError` before anything
    is saved; a pass that leaves too much suspends its workflow (see the README)."""

    clock: Callable[[], datetime] = utcnow
    """Source of the current time (UTC, timezone-aware)."""

    @classmethod
    def from_kwargs(cls, base: HostOptions | None = None, **values: Any) -> HostOptions:
        """Options from keyword arguments; durations may be timedeltas or seconds."""
        known = {f.name: f for f in fields(cls)}
        defaults = base or cls()
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigurationError(f"unknown host option {name!r}; known options: {', '.join(sorted(known))}")
            default = getattr(defaults, name)
            if name == "max_payload_bytes":
                if value is not None and (type(value) is not int or value < 1):
                    raise ConfigurationError(f"host option {name} must be a positive integer or None, got {value!r}")
            elif isinstance(default, timedelta):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = timedelta(seconds=value)
                if not isinstance(value, timedelta) or value < timedelta(0):
                    raise ConfigurationError(f"host option {name} must be a non-negative duration, got {value!r}")
            elif isinstance(default, int) and (not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"host option {name} must be a positive integer, got {value!r}")
            elif name == "clock" and not callable(value):
                raise ConfigurationError(f"host option clock must be callable, got {value!r}")
            elif name == "default_error_behavior" and not isinstance(value, (ErrorBehavior, RetryPolicy)):
                raise ConfigurationError(
                    f"default_error_behavior must be an ErrorBehavior or RetryPolicy, got {value!r}"
                )
            changes[name] = value
        return replace(defaults, **changes)

    def __post_init__(self) -> None:
        if not self.provider_timeout > timedelta(0):
            raise ConfigurationError(f"host option provider_timeout must be positive, got {self.provider_timeout!r}")
