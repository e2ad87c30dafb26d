"""MCP servers as tools. `McpToolset` connects to one server (stdio or streamable HTTP), lists its
tools and calls them. Models see each tool as `<server>__<tool>` (characters providers refuse become
`_`): names stay unique across servers and built-ins, and valid for OpenAI and Anthropic alike."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import ValidationError

from podium.errors import UsageError
from podium.llm.base import ToolSpec
from podium.steps.output import with_marker
from podium.tools.base import McpServerConfig, ToolContext, ToolError

_MAX_NAME = 64  # the providers' limit on a tool name
_MAX_PAGES = 100
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the read timeout bounds an idle SSE stream
_CALL_ERRORS = (
    MCPError,
    ValidationError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    httpx2.HTTPError,
)
_log = logging.getLogger(__name__)


class McpTool:
    """One of a server's tools, offered to models under its exposed name."""

    def __init__(self, toolset: McpToolset, name: str, spec: ToolSpec) -> None:
        self.name = name  # the server's own name for it
        self._toolset = toolset
        self._spec = spec

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return _cap(await self._toolset.call(self.name, arguments), ctx.output_limit_bytes)


class McpToolset:
    """A connection to one MCP server. Enter and exit it in the same task (the MCP client runs
    task groups); `tools` maps the server's tool names to `McpTool`s once connected."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.tools: dict[str, McpTool] = {}
        self._client: Client | None = None
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> McpToolset:
        stack = AsyncExitStack()
        try:
            async with asyncio.timeout(self.config.connect_timeout_seconds):
                client = await stack.enter_async_context(await self._client_for(stack))
                tools = self._wrap(await _list_tools(client))
        except BaseException as exc:
            await _close_quietly(stack, self.config)
            if isinstance(exc, Exception):
                raise _connect_error(self.config, exc) from exc
            raise
        self._client, self._stack, self.tools = client, stack, tools
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await _close_quietly(stack, self.config)

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.tools.values()]

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool `name`; its text content joined, other content summarised.
        Raise `ToolError` when the tool reports an error, times out, or the connection fails."""
        if self._client is None:
            raise ToolError(f"MCP server {self.config.name!r} is not connected")
        seconds = self.config.call_timeout_seconds
        try:
            result = await self._client.call_tool(name, arguments, read_timeout_seconds=seconds)
        except _CALL_ERRORS as exc:
            raise ToolError(self._call_failure(name, exc)) from None
        text = _render(result)
        if result.is_error:
            raise ToolError(text or f"tool {name!r} reported an error without a message")
        return text

    async def _client_for(self, stack: AsyncExitStack) -> Client:
        config = self.config
        transport: Transport
        if config.command is not None:
            params = StdioServerParameters(command=config.command, args=config.args, env=config.env)
            transport = stdio_client(params, errlog=sys.stderr)
        else:
            http = httpx2.AsyncClient(headers=config.headers, timeout=_HTTP_TIMEOUT)
            await stack.enter_async_context(http)
            transport = streamable_http_client(str(config.url), http_client=http)
        return Client(transport, cache=None)  # the connect timeout bounds the handshake

    def _wrap(self, listed: list[mcp_types.Tool]) -> dict[str, McpTool]:
        tools: dict[str, McpTool] = {}
        exposed: dict[str, str] = {}
        for tool in listed:
            name = exposed_name(self.config.name, tool.name)
            if (other := exposed.setdefault(name, tool.name)) != tool.name:
                raise UsageError(
                    f"MCP server {self.config.name!r} has tools {other!r} and {tool.name!r}, which "
                    f"would both be offered to models as {name!r}; rename one on the server"
                )
            spec = ToolSpec(name, tool.description or tool.title or "", tool.input_schema)
            tools[tool.name] = McpTool(self, tool.name, spec)
        return tools

    def _call_failure(self, name: str, exc: Exception) -> str:
        where = f"tool {name!r} on MCP server {self.config.name!r}"
        if isinstance(exc, MCPError) and exc.code == mcp_types.REQUEST_TIMEOUT:
            return f"{where} did not answer within {self.config.call_timeout_seconds:g} s"
        if isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED:
            return f"{where} cannot be called: the server closed the connection"
        detail = str(_leaf(exc)) or type(_leaf(exc)).__name__
        return f"{where} failed: {detail}"


def exposed_name(server: str, tool: str) -> str:
    """The name models see for `tool` of `server`: `<server>__<tool>`, safe and at most 64 chars."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")[:_MAX_NAME]


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


async def _close_quietly(stack: AsyncExitStack, config: McpServerConfig) -> None:
    """Close the connection; a server that misbehaves while shutting down is only logged."""
    try:
        await stack.aclose()
    except Exception:
        _log.warning("closing MCP server %r failed", config.name, exc_info=True)


def _connect_error(config: McpServerConfig, exc: Exception) -> UsageError:
    leaf = _leaf(exc)
    if isinstance(leaf, UsageError):
        return leaf
    if isinstance(leaf, TimeoutError):
        detail = f"no answer within {config.connect_timeout_seconds:g} s"
    elif isinstance(leaf, MCPError) and leaf.code == mcp_types.CONNECTION_CLOSED:
        detail = "the server closed the connection during the handshake"
    else:
        detail = f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__
    if config.transport == "stdio":
        hint = (
            "check that the command is installed and on PATH and that it serves MCP on "
            "stdin/stdout (run it by hand to see its errors)"
        )
    else:
        hint = "check that the server is running and that the URL (path included) is right"
    return UsageError(
        f"cannot connect to MCP server {config.name!r} ({config.describe()}): {detail}; {hint}"
    )


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from the client's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _render(result: mcp_types.CallToolResult) -> str:
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False)]
    return "\n".join(parts)


def _block_text(block: mcp_types.ContentBlock) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        size = len(block.data) * 3 // 4
        return f"[{block.type} content: {block.mime_type}, about {size} bytes, not shown]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    contents = block.resource
    if isinstance(contents, mcp_types.TextResourceContents):
        return contents.text
    return f"[binary resource: {contents.uri} ({contents.mime_type or 'unknown type'}), not shown]"


def _cap(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    return with_marker(kept, len(kept.encode()), len(data))
