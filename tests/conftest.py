"""Shared test helpers: tests that need a service skip when it is down, except in CI."""

from __future__ import annotations

import os
import socket

import pytest


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test if nothing listens on ``host:port``; fail instead when ``CI=true``,
    since CI starts every service and must run every test."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        message = f"{name} not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services must be running)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return "amqp://guest:guest@127.0.0.1:5672/%2F"
