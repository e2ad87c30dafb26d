"""What the MCP tests share: configs for the test server (tests/tools/mcp_server.py), tool
contexts, and a streamable-HTTP test server process on 127.0.0.1 that can be restarted."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from podium.tools import McpServerConfig, ToolContext

SERVER = Path(__file__).with_name("mcp_server.py")


def stdio_config(*flags: str, **overrides: object) -> McpServerConfig:
    fields = {"name": "test", "command": sys.executable, "args": [str(SERVER), *flags]}
    return McpServerConfig.model_validate(fields | overrides)


def context(workspace: Path, limit: int = 1024 * 1024) -> ToolContext:
    return ToolContext(workspace=workspace, run_id="r", step_id="s", output_limit_bytes=limit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def eventually(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Wait until `check()` holds (something another process or task does), or fail."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # paces the polling; it goes on as soon as `check` holds


class HttpServer:
    """The test server serving streamable HTTP in a subprocess, on one port across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, str(SERVER), "--http", str(self.port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._process = process
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert process.poll() is None, "the MCP test server exited during startup"
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)  # paces the polling: it goes on as soon as the server answers
        pytest.fail(f"the MCP test server did not answer at {self.url}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
