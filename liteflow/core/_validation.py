"""Argument checks for the public API: a wrong type fails at once, in the call that received it,
with an :class:`InvalidArgumentError` naming the call and the argument, never as an
``AttributeError`` or ``TypeError`` from deep inside a provider."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ._errors import InvalidArgumentError
from ._models import WorkflowStatus

_STATUSES = ", ".join(repr(s.value) for s in WorkflowStatus)


def _got(value: Any) -> str:
    return f"got {reprlib.repr(value)} ({type(value).__name__})"


def _fail(call: str, name: str, wanted: str, value: Any) -> InvalidArgumentError:
    return InvalidArgumentError(f"{call}: {name} must be {wanted}, {_got(value)}")


def text(call: str, name: str, value: Any) -> str:
    """A non-empty str."""
    if type(value) is not str or not value:
        raise _fail(call, name, "a non-empty str", value)
    return value


def optional_text(call: str, name: str, value: Any) -> str | None:
    """None or a str."""
    if value is not None and type(value) is not str:
        raise _fail(call, name, "a str or None", value)
    return value


def optional_int(call: str, name: str, value: Any) -> int | None:
    """None or an int (not a bool)."""
    if value is not None and type(value) is not int:
        raise _fail(call, name, "an int or None", value)
    return value


def integer(call: str, name: str, value: Any) -> int:
    """An int (not a bool); the range is checked by whoever uses it."""
    if type(value) is not int:
        raise _fail(call, name, "an int", value)
    return value


def aware_datetime(call: str, name: str, value: Any) -> datetime | None:
    """None or a timezone-aware datetime."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _fail(call, name, "a timezone-aware datetime or None", value)
    if value.utcoffset() is None:
        raise InvalidArgumentError(f"{call}: {name} must be timezone-aware (for example UTC), got {value!r}")
    return value


def status(call: str, name: str, value: Any) -> WorkflowStatus | None:
    """None, a WorkflowStatus, or the str value of one (``"complete"``)."""
    if value is None or isinstance(value, WorkflowStatus):
        return value
    if type(value) is str:
        try:
            return WorkflowStatus(value)
        except ValueError:
            pass
    raise _fail(call, name, f"a WorkflowStatus (or one of {_STATUSES}) or None", value)


def statuses(call: str, name: str, value: Any) -> list[WorkflowStatus]:
    """One status (as for :func:`status`) or a non-empty sequence of them."""
    items = [value] if isinstance(value, (WorkflowStatus, str)) else value
    wanted = "a WorkflowStatus or a non-empty sequence of them"
    if not isinstance(items, Sequence) or not items:
        raise _fail(call, name, wanted, value)
    found: list[WorkflowStatus] = []
    for item in items:
        checked = status(call, name, item)
        if checked is None:
            raise _fail(call, name, wanted, value)
        found.append(checked)
    return found


def timeout(call: str, name: str, value: Any) -> float | None:
    """None (wait forever), or a non-negative number of seconds or timedelta, as seconds."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif type(value) in (int, float):
        seconds = float(value)
    else:
        raise _fail(call, name, "a number of seconds, a timedelta or None", value)
    if not seconds >= 0:  # also refuses NaN
        raise InvalidArgumentError(f"{call}: {name} must not be negative, got {value!r}")
    return seconds


def age_or_time(call: str, name: str, value: Any) -> timedelta | datetime:
    """A non-negative timedelta (an age) or a timezone-aware datetime."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidArgumentError(f"{call}: {name} must not be negative, got {value!r}")
        return value
    if isinstance(value, datetime):
        aware_datetime(call, name, value)
        return value
    raise _fail(call, name, "a timedelta or a timezone-aware datetime", value)
