"""Tools that agents call: the built-ins, MCP servers, and the registry that resolves an agent's
`tools` list.

This package's `__init__` is the one place that wires the tool adapters (layer L5 in
docs/DESIGN.md "Layers"): it hands the step executors to the built-in tools and the MCP client to
the registry, as the registry's defaults. The adapters are imported when first used:
`podium.tools.mcp` needs the `mcp` extra, and `podium.steps.base` imports the tool port, which
runs this `__init__` first (tests/test_layers.py checks what runs at import time for cycles).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from podium.errors import UsageError
from podium.tools.base import (
    McpServerConfig,
    RichTool,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolImage,
    ToolOutput,
    ToolRegistry,
    Toolset,
    ToolUnavailableError,
    annotations_of,
    install_defaults,
    run_tool,
)

__all__ = [
    "McpServerConfig",
    "RichTool",
    "Tool",
    "ToolAnnotations",
    "ToolContext",
    "ToolError",
    "ToolImage",
    "ToolOutput",
    "ToolRegistry",
    "ToolUnavailableError",
    "Toolset",
    "annotations_of",
    "builtin_tools",
    "connect_mcp",
    "run_tool",
]


def builtin_tools() -> dict[str, Tool]:
    """A fresh instance of every built-in tool, by name, run by the built-in step executors."""
    # Imported here, not above: the step port imports the tool port, which runs this __init__
    # first, while `podium.steps.base` (which both of these import) may still be importing.
    from podium.steps import executor_for
    from podium.tools import builtin

    return builtin.builtin_tools(executor_for)


def connect_mcp(config: McpServerConfig) -> AbstractAsyncContextManager[Toolset]:
    """A connection to one MCP server (enter it to connect); UsageError without the MCP SDK."""
    try:
        from podium.tools.mcp import McpToolset
    except ImportError as exc:
        message = f"MCP servers need the MCP SDK ({exc}); install it: pip install 'podium[mcp]'"
        raise UsageError(message) from exc
    return McpToolset(config)


install_defaults(builtins=builtin_tools, connect=connect_mcp)
