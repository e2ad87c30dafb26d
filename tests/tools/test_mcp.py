"""MCP tools against the real test server (tests/tools/mcp_server.py): over stdio, spawned by the
client, and over streamable HTTP, as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.tools.mcp_helpers import context, free_port, stdio_config

from podium.errors import UsageError
from podium.tools import McpServerConfig, ToolError, ToolRegistry
from podium.tools.mcp import McpToolset, exposed_name

TOOL_NAMES = sorted(
    [
        "add",
        "background",
        "die",
        "fail",
        "picture",
        "pid",
        "read_resource",
        "search.v2",
        "search_v2",
        "shout",
        "summarise_the_repository_history_and_write_a_report_for_maintainers_x",
        "wait",
    ]
)


async def exercise(toolset: McpToolset, tmp_path: Path) -> None:
    """What both transports must do: list, call, report errors, summarise non-text content."""
    assert sorted(toolset.tools) == TOOL_NAMES  # `background` is hidden only in the 2025 era
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
    with pytest.raises(UsageError, match="not an MCP message on stdout: 'hello'"):
        await McpToolset(config).__aenter__()
    with pytest.raises(UsageError, match=r"exited .* during the handshake"):
        await McpToolset(stdio_config(args=["-c", "pass"])).__aenter__()


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
    with pytest.raises(UsageError, match=r"no answer to the MCP handshake within 0\.5 s"):
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
    assert exposed_name("gh", "repo_search-v2") == "gh__repo_search-v2"
    assert len(exposed_name("s", "t" * 100)) == 64


async def test_the_registry_resolves_builtins_and_mcp_tools_from_any_task(tmp_path: Path) -> None:
    registry = ToolRegistry([stdio_config()])
    assert registry.available() == ["http_get", "read_file", "write_file", "mcp:test"]
    refs = ["read_file", "mcp:test/add", "mcp:test"]
    async with registry:
        tools = await asyncio.create_task(registry.resolve(refs))  # connects in another task
        names = [tool.spec.name for tool in tools]
        expected = ["read_file", "test__add", "test__fail", "test__wait", "test__picture"]
        assert names[:5] == expected
        again = await registry.resolve(["mcp:test/add"])
        assert again[0] is tools[1]  # the connection is shared
        with pytest.raises(UsageError) as caught:
            await registry.resolve(["mcp:test/sub", "read_file"])
        assert "MCP server 'test' has no tool 'sub'" in str(caught.value)
        assert "it offers: add, background, die, fail, picture, pid, read_resource" in str(
            caught.value
        )
    with pytest.raises(ToolError, match="not connected"):
        await tools[1].call({"a": 1, "b": 2}, context(tmp_path))


async def test_the_registry_reports_unknown_names_with_what_is_available() -> None:
    registry = ToolRegistry([stdio_config()])
    problems = registry.check(["grep", "mcp:nope/x", "read_file", "mcp:test/anything"])
    assert problems == [
        "unknown tool 'grep'; available: http_get, read_file, write_file, mcp:test",
        "unknown MCP server 'nope' in 'mcp:nope/x'; configured servers: test"
        " (servers are configured under `mcpServers`)",
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
