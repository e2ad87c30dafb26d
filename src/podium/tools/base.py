"""The tool port: `Tool`, `ToolContext`, `ToolOutput` and the `ToolError`s; `McpServerConfig` and
the `Toolset` a connected server offers; and the `ToolRegistry` that turns an agent's `tools` list
into Tool objects (MCP servers connect lazily).

The registry knows no adapter: it is handed the built-in tools and a way to connect a server, by
default the ones `podium.tools` (the package, which wires the adapters) installs with
`install_defaults` when it is imported, which Python does before any module of the package."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from podium.errors import PodiumError, UsageError
from podium.llm.base import ToolSpec
from podium.spec.policy import Policy


class ToolError(PodiumError):
    """A tool call failed in a way the model can act on (bad path, HTTP 404, a server-side error).
    The agent loop sends the message back as the tool's result; it never ends the step."""

    retryable = False


class ToolUnavailableError(ToolError):
    """The tool's server cannot be reached (it died again after a restart, or its connection
    failed mid-call). `retryable`: the agent step may fail as retryable instead of telling the
    model, since a later attempt may find the server back."""

    retryable = True


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolImage:
    """An image a tool returned: base64 `data` and its `mime_type` (e.g. `image/png`)."""

    data: str
    mime_type: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutput:
    """What a tool returned: its text (what `Tool.call` returns) and the images beside it."""

    text: str
    images: tuple[ToolImage, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolAnnotations:
    """What a tool says about its effects (MCP's hints; None: the tool did not say)."""

    read_only: bool | None = None
    idempotent: bool | None = None
    destructive: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolContext:
    """What a tool call may use besides its arguments; `policy` is the run's (what the built-in
    file and http tools may reach)."""

    workspace: Path
    run_id: str
    step_id: str
    output_limit_bytes: int
    policy: Policy = field(default_factory=Policy)
    protected: tuple[Path, ...] = ()  # Podium's own files (see `StepContext.protected`)


class Tool(Protocol):
    """One tool offered to a model. `call` returns the text fed back to the model and raises
    `ToolError` for failures the model should hear about."""

    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str: ...


class RichTool(Tool, Protocol):
    """A tool that can return images too: `run` is `call` with the whole `ToolOutput`."""

    @property
    def annotations(self) -> ToolAnnotations: ...

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput: ...


async def run_tool(tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    """Call `tool` for its whole output: `run` where the tool has it, else `call`'s text."""
    run = getattr(tool, "run", None)
    if run is not None:
        output: ToolOutput = await run(arguments, ctx)
        return output
    return ToolOutput(text=await tool.call(arguments, ctx))


def annotations_of(tool: Tool) -> ToolAnnotations:
    """What `tool` says about its effects (nothing, for a tool without annotations)."""
    found = getattr(tool, "annotations", None)
    return found if isinstance(found, ToolAnnotations) else ToolAnnotations()


class McpServerConfig(BaseModel):
    """One MCP server: `command` (+ `args`, `env` merged over a minimal safe environment) for stdio,
    or `url` (+ `headers`, e.g. `Authorization: Bearer …`) for streamable HTTP. Its tools are
    exposed as `<name>__<tool>`. `timeout` (seconds, default 30) bounds starting and the
    handshake; its stderr is appended to `<workspace>/.podium/logs/mcp-<name>.log`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    command: str | None = Field(None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = Field(None, min_length=1)
    url: str | None = Field(None, pattern=r"^https?://\S+$")
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_seconds: float = Field(
        30.0, gt=0, validation_alias=AliasChoices("timeout", "connect_timeout_seconds")
    )
    call_timeout_seconds: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (a stdio server) or `url` (streamable HTTP)")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` apply to a `command`, not to a `url`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` apply to a `url`, not to a `command`")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """Where the server is, for error messages (headers and env are left out: secrets)."""
        if self.command is not None:
            return "command " + " ".join([self.command, *self.args])
        return f"URL {self.url}"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, Any]]) -> list[McpServerConfig]:
        """Configs from the `{name: {command: …} | {url: …}}` shape of a settings file."""
        return [cls.model_validate({**fields, "name": name}) for name, fields in raw.items()]


class Toolset(Protocol):
    """The tools of one connected server, by the server's own tool names."""

    @property
    def tools(self) -> Mapping[str, Tool]: ...


Connect: TypeAlias = Callable[[McpServerConfig], AbstractAsyncContextManager[Toolset]]
"""Opens a connection to one server; entered and exited in one task the registry owns."""


@dataclass(frozen=True, slots=True)
class _Defaults:
    builtins: Callable[[], Mapping[str, Tool]]
    connect: Connect


_defaults: _Defaults | None = None


def install_defaults(*, builtins: Callable[[], Mapping[str, Tool]], connect: Connect) -> None:
    """What a `ToolRegistry` uses when it is given no `builtins` or `connect`: `podium.tools`
    installs the built-in tools (run by the step executors) and the MCP client."""
    global _defaults
    _defaults = _Defaults(builtins=builtins, connect=connect)


def _installed() -> _Defaults:
    if _defaults is None:  # only if podium.tools failed half-way through its import
        raise UsageError("no default tools are installed; import podium.tools first")
    return _defaults


class ToolRegistry:
    """Resolves agents' `tools` lists: built-in names, `mcp:<server>` (every tool of the server)
    and `mcp:<server>/<tool>`. Use it as an async context manager: MCP servers connect on first
    use, each in a task the registry owns (so any task may resolve), and close on exit."""

    def __init__(
        self,
        servers: Iterable[McpServerConfig] = (),
        *,
        builtins: Mapping[str, Tool] | None = None,
        connect: Connect | None = None,
    ) -> None:
        self._servers: dict[str, McpServerConfig] = {}
        for config in servers:
            if config.name in self._servers:
                raise UsageError(f"two MCP servers are named {config.name!r}; rename one")
            self._servers[config.name] = config
        self._builtins = dict(builtins if builtins is not None else _installed().builtins())
        self._connect = connect if connect is not None else _installed().connect
        self._open: dict[str, asyncio.Future[Toolset]] = {}
        self._holders: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def __aenter__(self) -> ToolRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def available(self) -> list[str]:
        return sorted(self._builtins) + [f"mcp:{name}" for name in sorted(self._servers)]

    def check(self, refs: Sequence[str]) -> list[str]:
        """What is wrong with `refs` that can be told without starting any server: unknown
        built-ins and MCP servers that are not configured, each with a did-you-mean."""
        return [message for ref in refs if (message := self._unknown(ref))]

    async def resolve(self, refs: Sequence[str]) -> list[Tool]:
        """The tools named by `refs`, in order, without duplicates. Raise `UsageError` naming every
        unknown reference with what is available (a server's own tools for `mcp:<server>/<x>`)."""
        if problems := self.check(refs):
            raise _unresolved(problems)
        tools: dict[str, Tool] = {}
        for ref in refs:
            found = await self._tools_for(ref)
            if isinstance(found, str):
                problems.append(found)
            else:
                tools |= {tool.spec.name: tool for tool in found}
        if problems:
            raise _unresolved(problems)
        return list(tools.values())

    async def aclose(self) -> None:
        """Disconnect every MCP server this registry connected."""
        self._stop.set()
        holders, self._holders, self._open = self._holders, [], {}
        await asyncio.gather(*holders, return_exceptions=True)
        self._stop = asyncio.Event()

    def _unknown(self, ref: str) -> str:
        if ref.startswith("mcp:"):
            server = ref[4:].partition("/")[0]
            if server in self._servers:
                return ""
            known = ", ".join(sorted(self._servers)) or "none are configured"
            return (
                f"unknown MCP server {server!r} in {ref!r}{_did_you_mean(server, self._servers)}; "
                f"configured servers: {known} (servers are configured under `mcpServers`)"
            )
        if ref in self._builtins:
            return ""
        hint = _did_you_mean(ref, self.available())
        return f"unknown tool {ref!r}{hint}; available: {', '.join(self.available())}"

    async def _tools_for(self, ref: str) -> list[Tool] | str:
        if not ref.startswith("mcp:"):
            return [self._builtins[ref]]
        server, _, name = ref[4:].partition("/")
        toolset = await self._toolset(server)
        if not name:
            return list(toolset.tools.values())
        if name in toolset.tools:
            return [toolset.tools[name]]
        offered = ", ".join(sorted(toolset.tools)) or "none"
        return f"MCP server {server!r} has no tool {name!r} (in {ref!r}); it offers: {offered}"

    async def _toolset(self, server: str) -> Toolset:
        opening = self._open.get(server)
        if opening is None or (opening.done() and _failed(opening)):
            opening = self._open[server] = asyncio.get_running_loop().create_future()
            self._holders.append(asyncio.create_task(self._hold(server, opening, self._stop)))
        return await asyncio.shield(opening)  # a cancelled caller leaves the connection alone

    async def _hold(self, server: str, ready: asyncio.Future[Toolset], stop: asyncio.Event) -> None:
        """Connect, hand the toolset over, and keep it open until `aclose`: one task enters and
        exits the connection, as the MCP client's task groups require."""
        try:
            async with self._connect(self._servers[server]) as toolset:
                ready.set_result(toolset)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            ready.cancel()  # no-op once a result or an exception is set


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unresolved(problems: list[str]) -> UsageError:
    return UsageError("cannot resolve the agent's tools:\n  " + "\n  ".join(problems))


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.cancelled() or future.exception() is not None
