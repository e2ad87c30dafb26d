"""A tiny MCP server for the tests: `add(a, b)`, `fail()`, `wait(seconds)`
and `picture()` (text and an image).

`python tests/tools/mcp_server.py` serves over stdio; `... --http PORT` serves streamable HTTP on
127.0.0.1:PORT at /mcp.
"""

from __future__ import annotations

import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent

server = MCPServer("podium-test", log_level="WARNING")


@server.tool()
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
        ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
    ]


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
