"""Tools that agents call: the built-ins, MCP servers, and the registry that resolves an agent's
`tools` list. `podium.tools.mcp` (which needs the `mcp` extra) is imported only when a server is
used."""

from __future__ import annotations

from podium.tools.base import McpServerConfig, Tool, ToolContext, ToolError, ToolRegistry
from podium.tools.builtin import builtin_tools

__all__ = ["McpServerConfig", "Tool", "ToolContext", "ToolError", "ToolRegistry", "builtin_tools"]
