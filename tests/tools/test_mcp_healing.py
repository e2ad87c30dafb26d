"""MCP servers that die, restart or refuse: a dead stdio server is started again on the next call,
a restarted HTTP server gets a new session, a server that dies again is `ToolUnavailableError`
(retryable), and a 401/403 says what to set."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.tools.mcp_helpers import HttpServer, context, eventually, stdio_config

from podium.errors import UsageError
from podium.tools import McpServerConfig, ToolError, ToolUnavailableError
from podium.tools.mcp import McpToolset


async def test_a_killed_stdio_server_is_restarted_on_the_next_call(tmp_path: Path) -> None:
    async with McpToolset(stdio_config()) as toolset:
        first = int(await toolset.call("pid", {}))
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: not toolset.connected, "the client to see the server gone")
        assert await toolset.tools["add"].call({"a": 2, "b": 2}, context(tmp_path)) == "4"
        assert int(await toolset.call("pid", {})) != first
        assert toolset.connected
    log = (tmp_path / ".podium" / "logs" / "mcp-test.log").read_text()
    assert "[podium] restarting MCP server 'test'" in log


async def test_a_server_that_dies_during_a_call_is_unavailable_then_restarted() -> None:
    async with McpToolset(stdio_config()) as toolset:
        with pytest.raises(ToolUnavailableError) as caught:
            await toolset.call("die", {})
        assert caught.value.retryable
        message = str(caught.value)
        assert "tool 'die' on MCP server 'test' (command " in message
        assert "exited (or closed stdout) during the call" in message
        assert "started again on the next call" in message
        assert await toolset.call("add", {"a": 1, "b": 1}) == "2"


async def test_a_server_that_dies_again_on_restart_is_a_failure(tmp_path: Path) -> None:
    flag = tmp_path / "crash"
    async with McpToolset(stdio_config("--crash-if", str(flag))) as toolset:
        flag.touch()  # from now on the server exits as it starts
        os.kill(int(await toolset.call("pid", {})), signal.SIGKILL)
        await eventually(lambda: not toolset.connected, "the client to see the server gone")
        with pytest.raises(ToolUnavailableError) as caught:
            await toolset.call("add", {"a": 1, "b": 1})
        message = str(caught.value)
        assert "MCP server 'test' stopped and could not be restarted" in message
        assert "fatal: the crash file is there" in message  # the last lines of its stderr
        flag.unlink()
        assert await toolset.call("add", {"a": 1, "b": 1}) == "2"  # the next call tries again


async def test_a_restarted_http_server_gets_a_new_session(http_server: HttpServer) -> None:
    async with McpToolset(McpServerConfig(name="remote", url=http_server.url)) as toolset:
        assert await toolset.call("add", {"a": 1, "b": 2}) == "3"
        http_server.stop()
        with pytest.raises(ToolUnavailableError) as caught:
            await toolset.call("add", {"a": 1, "b": 2})
        assert "MCP server 'remote'" in str(caught.value)
        http_server.start()
        assert await toolset.call("add", {"a": 2, "b": 3}) == "5"


async def test_a_dropped_http_session_is_initialised_again(http_server: HttpServer) -> None:
    async with McpToolset(McpServerConfig(name="remote", url=http_server.url)) as toolset:
        first = await toolset.call("pid", {})
        http_server.stop()
        http_server.start()  # the new process knows no session: it answers 404 to ours
        assert await toolset.call("add", {"a": 2, "b": 3}) == "5"
        assert await toolset.call("pid", {}) != first


class _Refusing(BaseHTTPRequestHandler):
    status = 401

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("WWW-Authenticate", 'Bearer realm="mcp"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[401, 403])
def refusing_url(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    handler = type("Handler", (_Refusing,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_http_server_that_refuses_says_what_to_set(refusing_url: tuple[int, str]) -> None:
    status, url = refusing_url
    config = McpServerConfig(name="remote", url=url)
    with pytest.raises(UsageError) as caught:
        await McpToolset(config).__aenter__()
    message = str(caught.value)
    assert f"MCP server 'remote' (URL {url}) refused the request: HTTP {status}" in message
    assert "set `headers` in the server's config" in message
    assert "Bearer <token>" in message
    assert "check the URL" not in message
    assert not isinstance(caught.value, ToolError)
