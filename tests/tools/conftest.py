"""Fixtures of the tool tests: a streamable-HTTP MCP test server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.tools.mcp_helpers import HttpServer


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    server = HttpServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A server of the test's own, which the test may stop and start again."""
    server = HttpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
