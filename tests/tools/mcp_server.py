"""A small MCP server for the tests, written with the MCP SDK: `add(a, b)` (read-only), `fail()`,
`wait(seconds)`, `picture()` (text and an image), `pid()`, `shout(text)` (a line on stderr),
`search.v2` and `search_v2` (names that clean up alike), a tool with a 70-character name,
`background` (callable only as an MCP task: clients must not offer it), and two resources.

`python tests/tools/mcp_server.py` serves over stdio; `... --http PORT` serves streamable HTTP on
127.0.0.1:PORT at /mcp. Misbehaviours under test: `--banner` prints a banner on stdout first,
`--crash` writes to stderr and exits at once (`--crash-if PATH`: if PATH exists), `die()` exits
mid-call, `--stderr TEXT` writes TEXT to stderr at start;
`--legacy` speaks only the handshake-era protocol (2025-11-25, as the reference servers do), where
tools carry `execution.taskSupport`.
"""

from __future__ import annotations

import base64
import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp_types import ImageContent, TextContent, Tool, ToolAnnotations, ToolExecution

DOT_PNG = "iVBORw0KGgo="
LONG_NAME = "summarise_the_repository_history_and_write_a_report_for_maintainers_x"


class TestServer(MCPServer):
    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        for tool in tools:
            if tool.name == "background":
                tool.execution = ToolExecution(task_support="required")
        return tools


server = TestServer("podium-test", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("the fail tool always fails")


@server.tool()
async def wait(seconds: float) -> str:
    """Sleep, then answer (for timeouts)."""
    await anyio.sleep(seconds)  # the behaviour under test: a tool slow to answer
    return "done"


@server.tool()
def picture() -> list[TextContent | ImageContent]:
    """Text and an image."""
    return [
        TextContent(type="text", text="a red dot:"),
        ImageContent(type="image", data=DOT_PNG, mime_type="image/png"),
    ]


@server.tool()
def pid() -> str:
    """This server's process id."""
    return str(os.getpid())


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def shout(text: str) -> str:
    """Write a line to stderr."""
    print(text, file=sys.stderr, flush=True)
    return "shouted"


@server.tool()
def die() -> str:
    """Exit in the middle of the call."""
    os._exit(3)


@server.tool(name="search.v2")
def search_dot() -> str:
    """A name with a dot."""
    return "dot"


@server.tool(name="search_v2")
def search_underscore() -> str:
    """A name that the dotted one becomes once cleaned up."""
    return "underscore"


@server.tool(name=LONG_NAME)
def long_name() -> str:
    """A name over the providers' 64 characters."""
    return "long"


@server.tool()
def background() -> str:
    """Only callable as a task."""
    return "never offered"


@server.resource("notes://readme", name="readme", mime_type="text/plain", description="Read me")
def readme() -> str:
    return "hello from the readme"


@server.resource("images://dot", name="dot", mime_type="image/png")
def dot() -> bytes:
    return base64.b64decode(DOT_PNG)


def main(argv: list[str]) -> None:
    if "--crash-if" in argv and os.path.exists(argv[argv.index("--crash-if") + 1]):
        print("fatal: the crash file is there", file=sys.stderr, flush=True)
        sys.exit(1)
    if "--crash" in argv:
        print("fatal: no config file at /etc/test-server.toml", file=sys.stderr, flush=True)
        sys.exit(1)
    if "--stderr" in argv:
        print(argv[argv.index("--stderr") + 1], file=sys.stderr, flush=True)
    if "--banner" in argv:
        print("Test server v1.0 ready!", flush=True)
    if "--http" in argv:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[argv.index("--http") + 1]))
    elif "--legacy" in argv:
        anyio.run(serve_legacy)
    else:
        server.run("stdio")


async def serve_legacy() -> None:
    """Serve stdio in the handshake era only: a `server/discover` probe is refused, so clients
    fall back to `initialize`."""
    low = server._lowlevel_server
    async with stdio_server() as (read, write), low.lifespan(low) as state:
        options = low.create_initialization_options()
        await serve_loop(low, read, write, lifespan_state=state, init_options=options)


if __name__ == "__main__":
    main(sys.argv[1:])
