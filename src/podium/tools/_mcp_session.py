"""One live connection to an MCP server (`Connection`): the MCP client entered in a task of its
own (its task groups need one task), its stderr pumped into the server's log, and what its transport
saw — the end of the stream, stdout lines that are not MCP messages, HTTP error statuses, a refused
connection — so the toolset can tell a dead server from a failing tool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from podium.errors import UsageError
from podium.tools._mcp_logs import ServerLog, StderrPipe
from podium.tools.base import McpServerConfig

_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the read timeout bounds an idle SSE stream
_AUTH_STATUSES = {401: "401 Unauthorized", 403: "403 Forbidden"}


@dataclass(slots=True)
class Link:
    """What one connection's transport observed."""

    ended: bool = False  # the server's stream ended (a stdio server exited)
    stray: list[str] = field(default_factory=list)  # stdout lines that are not MCP messages
    status: int | None = None  # the last HTTP error status
    unreachable: bool = False  # an HTTP request could not connect (it never reached the server)
    session_id_sent: bool = False  # the failing HTTP request carried a session id

    def forget_failures(self) -> None:
        """A new request starts: what failed before says nothing about it."""
        self.status, self.unreachable, self.session_id_sent = None, False, False

    def auth_status(self) -> str | None:
        return _AUTH_STATUSES.get(self.status) if self.status is not None else None

    def session_gone(self) -> bool:
        """An HTTP server no longer knows our session (it restarted): 404 with a session id."""
        return self.status == 404 and self.session_id_sent


class _WatchedRead:
    """The transport's read stream, noting its end and any line that is not an MCP message."""

    def __init__(self, inner: Any, link: Link) -> None:
        self._inner, self._link = inner, link

    @property
    def last_context(self) -> object:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._link.ended = True
            raise
        if isinstance(item, Exception):
            self._link.stray.append(_stray_text(item))
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedRead:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Probe(httpx2.AsyncBaseTransport):
    """An HTTP transport that notes error statuses and refused connections for the messages."""

    def __init__(self, link: Link) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._link = link

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx2.ConnectError:
            self._link.unreachable = True
            raise
        if response.status_code >= 400:
            self._link.status = response.status_code
            self._link.session_id_sent = "mcp-session-id" in request.headers
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def _watched(transport: Transport, link: Link) -> AsyncIterator[Any]:
    async with transport as (read, write):
        yield _WatchedRead(read, link), write


class Connection:
    """One process (stdio) or session (HTTP) of a server; `open` connects, `close` ends it."""

    def __init__(self, config: McpServerConfig, log: ServerLog) -> None:
        self.config, self.log, self.link = config, log, Link()
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self.link.ended

    async def open(self) -> Client:
        """Connect; raise `UsageError` saying what went wrong (with the server's last stderr)."""
        self._task = asyncio.get_running_loop().create_task(self._hold())
        return await asyncio.shield(self._ready)

    async def client(self) -> Client:
        return await asyncio.shield(self._ready)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task])

    async def _hold(self) -> None:
        pipe = StderrPipe(self.log) if self.config.transport == "stdio" else None
        self.log.mark_start()
        try:
            async with AsyncExitStack() as stack:
                async with asyncio.timeout(self.config.connect_timeout_seconds):
                    client = await self._enter(stack, pipe)
                if self.link.stray:
                    raise _banner_error(self.config, self.link.stray[0])
                self._ready.set_result(client)
                await self._stop.wait()
        except Exception as exc:
            if pipe is not None:
                await pipe.drained()
            if not self._ready.done():
                self._ready.set_exception(connect_error(self.config, self.link, self.log, exc))
            else:
                self.log.line(f"[podium] the connection ended: {leaf_error(exc)!r}")
        finally:
            self._ready.cancel()  # no-op once a result or an exception is set
            if pipe is not None:
                await pipe.drained(0.2)

    async def _enter(self, stack: AsyncExitStack, pipe: StderrPipe | None) -> Client:
        transport: AbstractAsyncContextManager[Any]
        config = self.config
        if config.command is not None and pipe is not None:
            params = StdioServerParameters(
                command=config.command, args=config.args, env=config.env, cwd=config.cwd
            )
            transport = stdio_client(params, errlog=pipe.writer)
        else:
            http = httpx2.AsyncClient(
                headers=config.headers, timeout=_HTTP_TIMEOUT, transport=_Probe(self.link)
            )
            await stack.enter_async_context(http)
            transport = streamable_http_client(str(config.url), http_client=http)
        client = Client(_watched(transport, self.link), cache=None)
        try:
            return await stack.enter_async_context(client)
        finally:
            if pipe is not None:
                pipe.spawned()


def connect_error(config: McpServerConfig, link: Link, log: ServerLog, exc: Exception) -> Exception:
    """Why connecting to `config`'s server failed, naming it, its command or URL, what to do, and
    the last lines of its stderr."""
    leaf = leaf_error(exc)
    if isinstance(leaf, UsageError):
        return leaf
    if link.stray:
        return _banner_error(config, link.stray[0])
    where = f"MCP server {config.name!r} ({config.describe()})"
    if (auth := link.auth_status()) is not None:
        return UsageError(auth_message(where, auth))
    if isinstance(leaf, TimeoutError):
        detail = f"no answer to the MCP handshake within {config.connect_timeout_seconds:g} s"
    elif link.ended or _closed(leaf):
        detail = "the server exited (or closed stdout) during the handshake"
    else:
        detail = f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__
    if config.transport == "stdio":
        hint = (
            "check that the command is installed and on PATH and that it serves MCP on "
            "stdin/stdout; raise `timeout` in its config if it is slow to start"
        )
    else:
        hint = "check that the server is running and that the URL (path included) is right"
    return UsageError(f"cannot connect to {where}: {detail}; {hint}{log.tail()}")


def auth_message(where: str, status: str) -> str:
    return (
        f"{where} refused the request: HTTP {status}; set `headers` in the server's config with a "
        'token it accepts, e.g. headers: {Authorization: "Bearer <token>"}'
    )


def leaf_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from the client's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the connection (not the tool) failed."""
    leaf = leaf_error(exc)
    return _closed(leaf) or isinstance(
        leaf, OSError | anyio.ClosedResourceError | anyio.BrokenResourceError | httpx2.HTTPError
    )


def _closed(exc: BaseException) -> bool:
    return isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED


def _banner_error(config: McpServerConfig, line: str) -> UsageError:
    return UsageError(
        f"MCP server {config.name!r} ({config.describe()}) wrote text that is not an MCP message "
        f"on stdout: {line!r}; stdout must carry only MCP protocol messages (JSON-RPC, one per "
        "line): make the server print banners and logs to stderr"
    )


def _stray_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        found = exc.errors()[0].get("input")
        if isinstance(found, str):
            return found[:200]
    return str(exc)[:200]
