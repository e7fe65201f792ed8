"""Backoff delays and the outage log that background loops use."""

from __future__ import annotations

import logging

import pytest

from liteflow.core import InvalidArgumentError
from liteflow.core._backoff import Backoff, OutageLog


def test_delays_grow_exponentially_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, cap=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, step in zip(delays, steps):
        assert step / 2 <= delay <= step
    assert backoff.attempts == 8
    assert len({round(d, 9) for d in delays[4:]}) > 1  # jittered, not all the same


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(initial=0.1, cap=10.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.1


@pytest.mark.parametrize(("initial", "cap", "factor"), [(0, 1, 2), (1, 0.5, 2), (0.1, 1, 0.5)])
def test_invalid_settings_are_refused(initial: float, cap: float, factor: float) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid backoff"):
        Backoff(initial, cap, factor=factor)


def test_outage_is_logged_once_at_start_and_once_at_recovery(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog("test loop", logging.getLogger("liteflow.test"))
    outage.recovered()  # no outage: nothing logged
    with caplog.at_level(logging.INFO, logger="liteflow.test"):
        for n in range(5):
            outage.failed(ConnectionError(f"down {n}"))
        assert outage.in_outage and outage.failures == 5
        assert str(outage.last_error) == "down 4"
        outage.recovered()
        outage.recovered()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "test loop failed" in messages[0] and "down 0" in messages[0]
    assert "test loop recovered" in messages[1] and "5 failed attempt(s)" in messages[1]
    assert not outage.in_outage and outage.failures == 0
