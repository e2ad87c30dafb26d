"""The official MCP reference servers (`@modelcontextprotocol/server-everything` and
`server-filesystem`, installed by `npm ci` in tests/tools/npm), driven over stdio. Marked `real`:
the default run deselects them; `pytest -m real tests/tools` runs them where node_modules is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.tools.mcp_helpers import context, eventually

from podium.tools import McpServerConfig, ToolAnnotations, annotations_of, run_tool
from podium.tools.mcp import McpToolset

pytestmark = pytest.mark.real
PACKAGES = Path(__file__).with_name("npm") / "node_modules" / "@modelcontextprotocol"


def reference(name: str, *args: str) -> McpServerConfig:
    node = shutil.which("node") or "node"
    script = PACKAGES / f"server-{name}" / "dist" / "index.js"
    return McpServerConfig(name=name, command=node, args=[str(script), *args])


async def test_server_everything(tmp_path: Path) -> None:
    async with McpToolset(reference("everything", "stdio")) as toolset:
        assert "simulate-research-query" not in toolset.tools  # it needs MCP tasks
        echo = toolset.tools["echo"]
        assert echo.spec.name == "everything__echo"
        assert annotations_of(echo) == ToolAnnotations(
            read_only=True, idempotent=True, destructive=False
        )
        assert "hello" in await echo.call({"message": "hello"}, context(tmp_path))
        image = await run_tool(toolset.tools["get-tiny-image"], {}, context(tmp_path))
        assert [i.mime_type for i in image.images] == ["image/png"]
        assert "base64" not in image.text
        assert len(image.images[0].data) > 100
        resources = toolset.tools["read_resource"]
        listing = await resources.call({}, context(tmp_path))
        uri = listing.splitlines()[0].split(" — ")[0]
        assert await resources.call({"uri": uri}, context(tmp_path))
    log = tmp_path / ".podium" / "logs" / "mcp-everything.log"
    await eventually(lambda: "Starting" in log.read_text(), "the server's banner in its log")


async def test_server_filesystem(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (root / "notes.txt").write_text("from the filesystem server")
    async with McpToolset(reference("filesystem", str(root))) as toolset:
        read = toolset.tools["read_text_file"]
        text = await read.call({"path": str(root / "notes.txt")}, context(tmp_path))
        assert text == "from the filesystem server"
        assert annotations_of(toolset.tools["write_file"]).destructive
        assert annotations_of(read).read_only
