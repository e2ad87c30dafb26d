"""What an MCP server offers, as models see it: unique, valid and stable tool names (across
servers too), task-only tools hidden, annotations kept, images kept as images, and resources
listed and read through `read_resource`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.tools.mcp_helpers import context, stdio_config
from tests.tools.mcp_server import DOT_PNG, LONG_NAME

from podium.errors import UsageError
from podium.tools import (
    ToolAnnotations,
    ToolImage,
    ToolOutput,
    ToolRegistry,
    annotations_of,
    builtin_tools,
    run_tool,
)
from podium.tools.mcp import McpToolset, exposed_name

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_names_that_had_to_change_get_a_stable_hash() -> None:
    assert exposed_name("gh", "search") == "gh__search"
    dotted, plain = exposed_name("gh", "search.v2"), exposed_name("gh", "search_v2")
    assert plain == "gh__search_v2"
    assert dotted.startswith("gh__search_v2_")
    long_a, long_b = exposed_name("a" * 30, "t" * 60), exposed_name("a" * 30 + "b", "t" * 60)
    assert long_a != long_b
    assert len(long_a) == len(long_b) == 64
    assert all(VALID.match(name) for name in (dotted, long_a, long_b, exposed_name("é", "ü")))
    assert exposed_name("gh", "search.v2") == dotted  # a pure function: the same after a restart


async def test_colliding_and_long_names_across_two_servers_are_all_offered(tmp_path: Path) -> None:
    first, second = "x" * 31 + "1", "x" * 31 + "2"
    registry = ToolRegistry([stdio_config(name=first), stdio_config(name=second)])
    async with registry:
        tools = await registry.resolve([f"mcp:{first}", f"mcp:{second}"])
        names = [tool.spec.name for tool in tools]
        assert len(names) == len(set(names)) == 2 * 12
        assert all(VALID.match(name) for name in names)
        longs = [tool for tool in tools if "summarise" in tool.spec.name]
        assert len({tool.spec.name for tool in longs}) == 2
        assert await longs[1].call({}, context(tmp_path)) == "long"
    async with McpToolset(stdio_config(name=first)) as again:  # after a restart: the same names
        assert {t.spec.name for t in again.tools.values()} == set(names[:12])
        assert again.tools[LONG_NAME].spec.name == exposed_name(first, LONG_NAME)


async def test_tools_only_callable_as_tasks_are_not_offered() -> None:
    async with McpToolset(stdio_config("--legacy")) as toolset:  # the 2025-11-25 protocol
        assert "background" not in toolset.tools
        assert "add" in toolset.tools
    async with McpToolset(stdio_config()) as modern:  # 2026: no tasks in the core protocol
        assert "background" in modern.tools


async def test_annotations_are_kept() -> None:
    async with McpToolset(stdio_config()) as toolset:
        add, shout, fail = (toolset.tools[name] for name in ("add", "shout", "fail"))
        assert annotations_of(add) == ToolAnnotations(read_only=True, idempotent=True)
        assert annotations_of(shout) == ToolAnnotations(destructive=True)
        assert annotations_of(fail) == ToolAnnotations()
        assert annotations_of(toolset.tools["read_resource"]).read_only
    builtins = builtin_tools()
    assert annotations_of(builtins["read_file"]).read_only  # safe to run again after a crash
    assert annotations_of(builtins["http_get"]).read_only
    assert not annotations_of(builtins["write_file"]).read_only


async def test_images_are_kept_as_images(tmp_path: Path) -> None:
    async with McpToolset(stdio_config()) as toolset:
        picture = toolset.tools["picture"]
        image = ToolImage(data=DOT_PNG, mime_type="image/png")
        assert await run_tool(picture, {}, context(tmp_path)) == ToolOutput(
            text="a red dot:", images=(image,)
        )
        words = "[image content: image/png, about 9 bytes, not shown]"
        assert await picture.call({}, context(tmp_path)) == f"a red dot:\n{words}"
        small = await picture.run({}, context(tmp_path, limit=12))
        assert small.images == ()
        assert small.text.endswith("about 9 bytes, left out: over the output limit]")
    text_only = builtin_tools()["read_file"]
    (tmp_path / "a.txt").write_text("hi")
    assert await run_tool(text_only, {"path": "a.txt"}, context(tmp_path)) == ToolOutput(text="hi")


async def test_resources_are_listed_and_read(tmp_path: Path) -> None:
    async with McpToolset(stdio_config()) as toolset:
        tool = toolset.tools["read_resource"]
        assert tool.spec.name == "test__read_resource"
        assert await tool.call({}, context(tmp_path)) == (
            "notes://readme — readme (text/plain): Read me\nimages://dot — dot (image/png)"
        )
        readme = await tool.call({"uri": "notes://readme"}, context(tmp_path))
        assert readme == "hello from the readme"
        dot = await run_tool(tool, {"uri": "images://dot"}, context(tmp_path))
        assert dot.images == (ToolImage(data=DOT_PNG, mime_type="image/png"),)


async def test_a_stdio_server_starts_in_its_cwd(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "crash.flag").write_text("")  # found only from `cwd`: the server then exits
    async with McpToolset(stdio_config("--crash-if", "crash.flag")) as toolset:
        assert "add" in toolset.tools  # started elsewhere, it does not see the file
    with pytest.raises(UsageError, match="the crash file is there"):
        async with McpToolset(stdio_config("--crash-if", "crash.flag", cwd=str(home))):
            pass
