"""Waiting in tests without sleeping for a fixed time: poll a condition, with a deadline
(``from polling import wait_until``, as other tests import ``servers``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], what: str = "the condition", timeout: float = 30.0, *, every: float = 0.02
) -> T:
    """Poll ``condition`` every ``every`` seconds until it returns something truthy, and return that;
    fail the test after ``timeout`` seconds, naming ``what`` it waited for. The deadline only guards
    against a hang: a test that asserts how soon something happens measures it itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
