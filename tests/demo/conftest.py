"""Fixtures for the demo model's tests (the server itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .helpers import DemoAPI


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(20.0)) as client:
        yield client


@pytest.fixture
def api(http: httpx.Client) -> DemoAPI:
    return DemoAPI(http)
