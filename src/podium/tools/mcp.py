"""MCP servers as tools. `McpToolset` connects to one server (stdio or streamable HTTP), lists its
tools and calls them; a dead stdio server is restarted, and a dropped HTTP session initialised
again, on the next call (once per call). Models see each tool under `exposed_name` (names stay
unique across servers and built-ins, and valid for OpenAI and Anthropic alike); a server with
resources also offers `read_resource`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError
from pydantic import ValidationError

from podium.core.redact import Redactor
from podium.llm.base import ToolSpec
from podium.tools._mcp_content import Part, as_output, as_text, cap, resource_parts, result_parts
from podium.tools._mcp_logs import ServerLog
from podium.tools._mcp_names import exposed_name
from podium.tools._mcp_session import (
    Connection,
    auth_message,
    connect_error,
    connection_lost,
    leaf_error,
)
from podium.tools.base import (
    McpServerConfig,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolOutput,
    ToolUnavailableError,
)

__all__ = ["McpResourceTool", "McpTool", "McpToolset", "exposed_name"]

RESOURCE_TOOL = "read_resource"
_MAX_PAGES = 100
_CALL_ERRORS = (
    MCPError,
    ValidationError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    httpx2.HTTPError,
)
_T = TypeVar("_T")


class McpTool:
    """One of a server's tools, offered to models under its exposed name."""

    def __init__(
        self, toolset: McpToolset, name: str, spec: ToolSpec, annotations: ToolAnnotations
    ) -> None:
        self.name = name  # the server's own name for it
        self.annotations = annotations
        self._toolset = toolset
        self._spec = spec

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        self._toolset.use_workspace(ctx.workspace)
        return cap(as_text(await self._toolset.parts(self.name, arguments)), ctx.output_limit_bytes)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        self._toolset.use_workspace(ctx.workspace)
        return as_output(await self._toolset.parts(self.name, arguments), ctx.output_limit_bytes)


class McpResourceTool:
    """`<server>__read_resource`: lists the server's resources, or reads one by its URI."""

    annotations = ToolAnnotations(read_only=True, idempotent=True, destructive=False)

    def __init__(self, toolset: McpToolset) -> None:
        self.name = RESOURCE_TOOL
        self._toolset = toolset
        server = toolset.config.name
        self.spec = ToolSpec(
            exposed_name(server, RESOURCE_TOOL),
            f"Read a resource of the MCP server {server!r} by its `uri`; without a `uri`, list "
            "the resources it offers (their URIs, names and types).",
            {
                "type": "object",
                "properties": {"uri": {"type": "string", "description": "The resource's URI."}},
                "additionalProperties": False,
            },
        )

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return cap(as_text(await self._parts(arguments, ctx)), ctx.output_limit_bytes)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        return as_output(await self._parts(arguments, ctx), ctx.output_limit_bytes)

    async def _parts(self, arguments: dict[str, Any], ctx: ToolContext) -> list[Part]:
        self._toolset.use_workspace(ctx.workspace)
        uri = arguments.get("uri")
        if uri is None or uri == "":
            return [await self._toolset.resource_list()]
        if not isinstance(uri, str):
            raise ToolError(f"{self.spec.name} needs a string `uri` (or none, to list)")
        return await self._toolset.resource(uri)


class McpToolset:
    """A connection to one MCP server. Enter and exit it in one task; `tools` maps the server's
    tool names (and `read_resource`) to tools once connected. A server that died since the last
    call is started again on the next one; a call that finds it dead again fails with
    `ToolUnavailableError`."""

    def __init__(self, config: McpServerConfig, *, log: ServerLog | None = None) -> None:
        self.config = config
        self.tools: dict[str, McpTool | McpResourceTool] = {}
        secrets = [*config.env.values(), *config.headers.values()]
        self.log = log if log is not None else ServerLog(config.name, Redactor({}, secrets))
        self._connection: Connection | None = None
        self._restarting = asyncio.Lock()

    async def __aenter__(self) -> McpToolset:
        connection = Connection(self.config, self.log)
        client = await connection.open()  # UsageError, saying why
        try:
            async with asyncio.timeout(self.config.connect_timeout_seconds):
                listed = await _list_tools(client)
                resources = await _offers_resources(client)
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, Exception):
                raise connect_error(self.config, connection.link, self.log, exc) from None
            raise
        self._connection = connection
        self.tools = self._wrap(listed, resources=resources)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    @property
    def connected(self) -> bool:
        """Whether the current process or session is alive (else the next call restarts it)."""
        return self._connection is not None and self._connection.alive

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.tools.values()]

    def use_workspace(self, workspace: Path) -> None:
        """Append the server's stderr to this workspace's log from now on."""
        self.log.use_workspace(workspace)

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool `name`: its text, images said in words (see `parts`)."""
        return as_text(await self.parts(name, arguments))

    async def parts(self, name: str, arguments: dict[str, Any]) -> list[Part]:
        """Call the server's tool `name`. Raise `ToolError` when the tool reports an error or
        times out, `ToolUnavailableError` when the server cannot be reached."""
        seconds = self.config.call_timeout_seconds

        async def call(client: Client) -> mcp_types.CallToolResult:
            return await client.call_tool(name, arguments, read_timeout_seconds=seconds)

        result = await self._request(f"tool {name!r}", call)
        parts = result_parts(result)
        if result.is_error:
            raise ToolError(as_text(parts) or f"tool {name!r} reported an error without a message")
        return parts

    async def resource_list(self) -> str:
        async def listing(client: Client) -> list[mcp_types.Resource]:
            return await _list_resources(client)

        found = await self._request("resources/list", listing)
        return "\n".join(_resource_line(r) for r in found) or "the server offers no resources"

    async def resource(self, uri: str) -> list[Part]:
        async def read(client: Client) -> mcp_types.ReadResourceResult:
            return await client.read_resource(uri)

        return resource_parts(await self._request(f"resource {uri!r}", read))

    async def _request(self, what: str, op: Callable[[Client], Awaitable[_T]]) -> _T:
        """Run `op` on a live connection: restart a dead one first, and once more if the request
        provably never reached the server (a refused connection, an unknown HTTP session)."""
        connection = self._connection
        if connection is None:
            raise ToolError(f"MCP server {self.config.name!r} is not connected")
        restarted = False
        while True:
            if not connection.alive:
                if restarted:
                    raise ToolUnavailableError(self._died(what, connection))
                connection, restarted = await self._restart(connection), True
            client = await connection.client()
            connection.link.forget_failures()
            try:
                return await op(client)
            except _CALL_ERRORS as exc:
                link = connection.link
                if (link.session_gone() or link.unreachable) and not restarted:
                    await connection.close()
                    continue
                if link.auth_status() is not None or not connection_lost(exc):
                    raise ToolError(self._failure(what, exc, connection)) from None
                raise ToolUnavailableError(self._died(what, connection)) from None

    async def _restart(self, dead: Connection) -> Connection:
        async with self._restarting:
            if self._connection is None:
                raise ToolError(f"MCP server {self.config.name!r} is not connected")
            if self._connection is not dead:
                return self._connection  # another call restarted it meanwhile
            await dead.close()
            self.log.line(f"[podium] restarting MCP server {self.config.name!r}")
            fresh = Connection(self.config, self.log)
            try:
                await fresh.open()
            except Exception as exc:
                message = f"MCP server {self.config.name!r} stopped and could not be restarted"
                raise ToolUnavailableError(f"{message}: {exc}") from None
            self._connection = fresh
            return fresh

    def _wrap(
        self, listed: list[mcp_types.Tool], *, resources: bool
    ) -> dict[str, McpTool | McpResourceTool]:
        tools: dict[str, McpTool | McpResourceTool] = {}
        for tool in listed:
            if _needs_tasks(tool):
                self.log.line(f"[podium] not offering tool {tool.name!r}: it requires MCP tasks")
                continue
            name = exposed_name(self.config.name, tool.name)
            spec = ToolSpec(name, tool.description or tool.title or "", tool.input_schema)
            tools[tool.name] = McpTool(self, tool.name, spec, _annotations(tool))
        if resources and RESOURCE_TOOL not in tools:
            tools[RESOURCE_TOOL] = McpResourceTool(self)
        return tools

    def _failure(self, what: str, exc: Exception, connection: Connection | None = None) -> str:
        where = f"{what} on MCP server {self.config.name!r}"
        leaf = leaf_error(exc)
        if connection is not None and (auth := connection.link.auth_status()) is not None:
            return auth_message(where, auth)
        if isinstance(leaf, MCPError) and leaf.code == mcp_types.REQUEST_TIMEOUT:
            return f"{where} did not answer within {self.config.call_timeout_seconds:g} s"
        detail = str(leaf) or type(leaf).__name__
        return f"{where} failed: {detail}"

    def _died(self, what: str, connection: Connection) -> str:
        if self.config.transport == "stdio":
            lost = "the server exited (or closed stdout) during the call"
        else:
            lost = "the connection to the server failed during the call"
        return (
            f"{what} on MCP server {self.config.name!r} ({self.config.describe()}) cannot be "
            f"called: {lost}; it is started again on the next call{connection.log.tail()}"
        )


def _needs_tasks(tool: mcp_types.Tool) -> bool:
    """A tool only callable as an MCP task (which this client does not run)."""
    if tool.execution is not None and tool.execution.task_support == "required":
        return True
    execution = (tool.meta or {}).get("execution")
    return isinstance(execution, dict) and execution.get("taskSupport") == "required"


def _annotations(tool: mcp_types.Tool) -> ToolAnnotations:
    hints = tool.annotations
    if hints is None:
        return ToolAnnotations()
    return ToolAnnotations(
        read_only=hints.read_only_hint,
        idempotent=hints.idempotent_hint,
        destructive=hints.destructive_hint,
    )


def _resource_line(resource: mcp_types.Resource) -> str:
    kind = f" ({resource.mime_type})" if resource.mime_type else ""
    about = f": {resource.description}" if resource.description else ""
    return f"{resource.uri} — {resource.name}{kind}{about}"


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    pages = _pages(client.list_tools)
    return [tool async for page in pages for tool in page.tools]


async def _offers_resources(client: Client) -> bool:
    """Whether the server has resources to read (a capability with nothing behind it is none)."""
    if client.server_capabilities.resources is None:
        return False
    try:
        return bool((await client.list_resources()).resources)
    except MCPError:
        return False


async def _list_resources(client: Client) -> list[mcp_types.Resource]:
    pages = _pages(client.list_resources)
    return [found async for page in pages for found in page.resources]


async def _pages(fetch: Callable[..., Awaitable[Any]]) -> AsyncIterator[Any]:
    """Every page of a paginated MCP listing (at most `_MAX_PAGES`)."""
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await fetch(cursor=cursor)
        yield page
        cursor = page.next_cursor
        if cursor is None:
            return
