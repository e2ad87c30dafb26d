"""The client the MCP conformance suite drives: Podium's own MCP client (`McpToolset`) connects to
the suite's server at the URL given last on the command line, as an agent's tools would, and
calls every tool the server offers with example arguments.

    python -m tests.tools.conformance_client URL
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podium.tools import McpServerConfig
from podium.tools.base import ToolContext
from podium.tools.mcp import McpToolset


def example_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A value of the right kind for every required argument."""
    properties = schema.get("properties") or {}
    values: dict[str, Any] = {}
    for name in schema.get("required") or ():
        kind = (properties.get(name) or {}).get("type")
        values[name] = {"integer": 1, "number": 1, "boolean": True}.get(kind, "x")
    return values


async def main(url: str) -> int:
    with tempfile.TemporaryDirectory() as folder:
        ctx = ToolContext(workspace=Path(folder), run_id="c", step_id="s", output_limit_bytes=10**6)
        async with McpToolset(McpServerConfig(name="conformance", url=url)) as toolset:
            for name, tool in toolset.tools.items():
                if name.endswith("read_resource"):
                    continue
                text = await tool.call(example_arguments(tool.spec.parameters), ctx)
                print(f"{name}: {text}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[-1])))
