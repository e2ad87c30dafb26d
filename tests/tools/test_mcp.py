"""MCP tools against the real test server (tests/tools/mcp_server.py): over stdio, spawned by the
client, and over streamable HTTP, as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from podium.errors import UsageError
from podium.tools import McpServerConfig, ToolContext, ToolError, ToolRegistry
from podium.tools.mcp import McpToolset, exposed_name

SERVER = Path(__file__).with_name("mcp_server.py")
TOOL_NAMES = ["add", "fail", "picture", "wait"]


def stdio_config(**overrides: object) -> McpServerConfig:
    fields = {"name": "test", "command": sys.executable, "args": [str(SERVER)]} | overrides
    return McpServerConfig.model_validate(fields)


def context(tmp_path: Path, limit: int = 1024 * 1024) -> ToolContext:
    return ToolContext(workspace=tmp_path, run_id="r", step_id="s", output_limit_bytes=limit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, "the MCP test server exited during startup"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)  # paces the polling: it goes on as soon as the server answers
    pytest.fail(f"the MCP test server did not answer at {url}")


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, str(SERVER), "--http", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        wait_until_answering(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def exercise(toolset: McpToolset, tmp_path: Path) -> None:
    """What both transports must do: list, call, report errors, summarise non-text content."""
    assert sorted(toolset.tools) == TOOL_NAMES
    add = toolset.tools["add"]
    assert add.spec.name == "test__add"
    assert add.spec.description == "Add two integers."
    assert add.spec.parameters["required"] == ["a", "b"]
    assert await toolset.call("add", {"a": 2, "b": 3}) == "5"
    assert await add.call({"a": 40, "b": 2}, context(tmp_path)) == "42"
    with pytest.raises(ToolError, match="the fail tool always fails"):
        await toolset.call("fail", {})
    with pytest.raises(ToolError):  # the server refuses the arguments (its words, not checked)
        await toolset.call("add", {"a": "x", "b": 1})
    with pytest.raises(ToolError):  # the server knows no such tool
        await toolset.call("nope", {})
    picture = await toolset.call("picture", {})
    assert picture == "a red dot:\n[image content: image/png, about 9 bytes, not shown]"
    capped = await toolset.tools["picture"].call({}, context(tmp_path, limit=5))
    assert capped == f"a red\n…[truncated: kept 5 of {len(picture.encode())} bytes]"


async def test_a_stdio_server_lists_and_calls_tools(tmp_path: Path) -> None:
    async with McpToolset(stdio_config()) as toolset:
        await exercise(toolset, tmp_path)
    with pytest.raises(ToolError, match="not connected"):
        await toolset.call("add", {"a": 1, "b": 1})


async def test_a_streamable_http_server_lists_and_calls_tools(
    http_url: str, tmp_path: Path
) -> None:
    config = McpServerConfig(name="test", url=http_url, headers={"Authorization": "Bearer t"})
    async with McpToolset(config) as toolset:
        await exercise(toolset, tmp_path)


async def test_a_slow_call_times_out_and_the_connection_stays_usable() -> None:
    async with McpToolset(stdio_config(call_timeout_seconds=0.3)) as toolset:
        with pytest.raises(ToolError, match=r"tool 'wait' .* did not answer within 0\.3 s"):
            await toolset.call("wait", {"seconds": 5})
        assert await toolset.call("add", {"a": 1, "b": 1}) == "2"


async def test_a_missing_command_is_a_clear_error() -> None:
    config = stdio_config(command="/nonexistent/mcp-server", args=["--fast"])
    with pytest.raises(UsageError) as caught:
        await McpToolset(config).__aenter__()
    message = str(caught.value)
    assert "cannot connect to MCP server 'test' (command /nonexistent/mcp-server --fast)" in message
    assert "FileNotFoundError" in message
    assert "installed and on PATH" in message


async def test_a_command_that_is_not_an_mcp_server_is_a_clear_error() -> None:
    config = stdio_config(args=["-c", "print('hello')"])
    with pytest.raises(UsageError, match="closed the connection during the handshake"):
        await McpToolset(config).__aenter__()


async def test_an_unreachable_url_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(UsageError) as caught:
        await McpToolset(McpServerConfig(name="remote", url=url)).__aenter__()
    message = str(caught.value)
    assert f"cannot connect to MCP server 'remote' (URL {url})" in message
    assert "check that the server is running" in message


async def test_a_silent_server_times_out_on_connect() -> None:
    # the behaviour under test: a "server" that never answers the handshake
    config = stdio_config(args=["-c", "import time; time.sleep(30)"], connect_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"no answer within 0\.5 s"):
        await McpToolset(config).__aenter__()
    assert time.monotonic() - started < 8


def test_configs_need_exactly_one_transport() -> None:
    with pytest.raises(ValueError, match="either `command`"):
        McpServerConfig(name="x")
    with pytest.raises(ValueError, match="either `command`"):
        McpServerConfig(name="x", command="srv", url="http://h/mcp")
    with pytest.raises(ValueError, match="`headers` apply to a `url`"):
        McpServerConfig(name="x", command="srv", headers={"a": "b"})
    with pytest.raises(ValidationError) as bad_name:
        McpServerConfig(name="bad name", command="srv")
    assert [e["loc"] for e in bad_name.value.errors()] == [("name",)]
    configs = McpServerConfig.from_mapping({"gh": {"url": "https://h/mcp"}, "fs": {"command": "x"}})
    assert [(c.name, c.transport) for c in configs] == [("gh", "http"), ("fs", "stdio")]
    assert exposed_name("gh", "repo.search/v2") == "gh__repo_search_v2"
    assert len(exposed_name("s", "t" * 100)) == 64


async def test_the_registry_resolves_builtins_and_mcp_tools_from_any_task() -> None:
    registry = ToolRegistry([stdio_config()])
    assert registry.available() == ["http_get", "read_file", "write_file", "mcp:test"]
    refs = ["read_file", "mcp:test/add", "mcp:test"]
    async with registry:
        tools = await asyncio.create_task(registry.resolve(refs))  # connects in another task
        names = [tool.spec.name for tool in tools]
        assert names == ["read_file", "test__add", "test__fail", "test__wait", "test__picture"]
        again = await registry.resolve(["mcp:test/add"])
        assert again[0] is tools[1]  # the connection is shared
        with pytest.raises(UsageError) as caught:
            await registry.resolve(["mcp:test/sub", "read_file"])
        assert "MCP server 'test' has no tool 'sub'" in str(caught.value)
        assert "it offers: add, fail, picture, wait" in str(caught.value)
    with pytest.raises(ToolError, match="not connected"):
        await tools[1].call({"a": 1, "b": 2}, context(Path(".")))


async def test_the_registry_reports_unknown_names_with_what_is_available() -> None:
    registry = ToolRegistry([stdio_config()])
    problems = registry.check(["grep", "mcp:nope/x", "read_file", "mcp:test/anything"])
    assert problems == [
        "unknown tool 'grep'; available: http_get, read_file, write_file, mcp:test",
        "unknown MCP server 'nope' in 'mcp:nope/x'; configured servers: test",
    ]
    with pytest.raises(UsageError) as caught:
        await registry.resolve(["grep", "mcp:nope/x"])
    assert str(caught.value).splitlines()[1:] == [f"  {p}" for p in problems]
    with pytest.raises(UsageError, match="two MCP servers are named 'test'"):
        ToolRegistry([stdio_config(), stdio_config()])


async def test_a_failed_connection_is_reported_and_retried() -> None:
    registry = ToolRegistry([stdio_config(command="/nonexistent/mcp-server")])
    async with registry:
        for _ in range(2):
            with pytest.raises(UsageError, match="cannot connect to MCP server 'test'"):
                await registry.resolve(["mcp:test"])
