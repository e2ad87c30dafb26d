"""MCP servers that misbehave as they start, and where their stderr goes: a banner on stdout, a
crash, a hang past `timeout` — each a clear error naming the server, its command and the last
lines of its stderr — and stderr lines appended to `<workspace>/.podium/logs/mcp-<server>.log`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from tests.tools.mcp_helpers import SERVER, context, eventually, stdio_config

from podium.errors import UsageError
from podium.tools import McpServerConfig, ToolRegistry
from podium.tools.mcp import McpToolset


async def test_a_banner_on_stdout_is_named_as_the_problem() -> None:
    with pytest.raises(UsageError) as caught:
        await McpToolset(stdio_config("--banner")).__aenter__()
    message = str(caught.value)
    assert f"MCP server 'test' (command {sys.executable} {SERVER} --banner)" in message
    assert "not an MCP message on stdout: 'Test server v1.0 ready!'" in message
    assert "stdout must carry only MCP protocol messages" in message


async def test_a_server_that_crashes_at_start_shows_its_stderr() -> None:
    with pytest.raises(UsageError) as caught:
        await McpToolset(stdio_config("--crash")).__aenter__()
    message = str(caught.value)
    assert f"cannot connect to MCP server 'test' (command {sys.executable} {SERVER} --crash)" in (
        message
    )
    assert "the server exited (or closed stdout) during the handshake" in message
    assert message.endswith("its stderr ends:\n    fatal: no config file at /etc/test-server.toml")


async def test_a_server_that_hangs_at_initialize_times_out_with_its_stderr() -> None:
    script = (
        "import sys, time; print('loading weights', file=sys.stderr, flush=True); time.sleep(60)"
    )
    config = McpServerConfig.model_validate(
        {"name": "slow", "command": sys.executable, "args": ["-c", script], "timeout": 0.5}
    )
    assert config.connect_timeout_seconds == 0.5
    started = time.monotonic()
    with pytest.raises(UsageError) as caught:
        await McpToolset(config).__aenter__()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "cannot connect to MCP server 'slow' (command " in message
    assert "no answer to the MCP handshake within 0.5 s" in message
    assert "raise `timeout` in its config" in message
    assert message.endswith("its stderr ends:\n    loading weights")


async def test_stderr_goes_to_the_workspace_log_not_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / ".podium" / "logs" / "mcp-test.log"
    async with McpToolset(stdio_config("--stderr", "started up")) as toolset:
        shout = toolset.tools["shout"]
        assert await shout.call({"text": "first call"}, context(tmp_path)) == "shouted"
        await eventually(lambda: "first call" in log.read_text(), "the line in the log")
    assert log.read_text().splitlines()[:2] == ["started up", "first call"]
    async with McpToolset(stdio_config()) as toolset:  # a later run appends
        await toolset.tools["shout"].call({"text": "second run"}, context(tmp_path))
        await eventually(lambda: "second run" in log.read_text(), "the line in the log")
    assert "started up" not in capfd.readouterr().err


async def test_the_registry_checks_servers_without_starting_them() -> None:
    never = McpServerConfig(name="github", command="/nonexistent/never-started")
    registry = ToolRegistry([never, stdio_config()])
    assert registry.check(["mcp:github", "mcp:github/search", "mcp:test/add", "read_file"]) == []
    problems = registry.check(["mcp:gihtub", "mcp:tset/add", "mcp:slack", "raed_file"])
    assert problems[0].startswith(
        "unknown MCP server 'gihtub' in 'mcp:gihtub' (did you mean 'github'?)"
    )
    assert "(did you mean 'test'?)" in problems[1]
    assert "did you mean" not in problems[2]
    assert "configured servers: github, test" in problems[2]
    assert problems[3].startswith("unknown tool 'raed_file' (did you mean 'read_file'?)")
