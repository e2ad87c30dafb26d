"""The file executor on a real temporary workspace: confinement, atomic writes, appends, reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from podium.errors import StepExecutionError
from podium.spec.model import FileStep
from podium.steps.base import StepContext
from podium.steps.file import FileExecutor

from .conftest import ContextFactory


async def run(ctx: StepContext, op: str, path: str, content: Any = None, **fields: Any) -> Any:
    step = FileStep(id="s", op=op, path=path, content=content, **fields)
    return (await FileExecutor().execute(step, ctx)).output


async def test_write_then_read(ctx: StepContext, workspace: Path) -> None:
    assert await run(ctx, "write", "out/a.txt", "héllo\n") == {"path": "out/a.txt", "bytes": 7}
    assert (workspace / "out" / "a.txt").read_text() == "héllo\n"
    assert await run(ctx, "read", "out/a.txt") == "héllo\n"


async def test_write_replaces_atomically_and_leaves_no_temp_files(
    ctx: StepContext, workspace: Path
) -> None:
    target = workspace / "a.txt"
    target.write_text("old")
    target.chmod(0o600)
    before = os.stat(target).st_ino
    await run(ctx, "write", "a.txt", "new")
    assert target.read_text() == "new"
    assert os.stat(target).st_ino != before  # a new file was renamed over the old one
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(workspace) == ["a.txt"]


async def test_non_text_content_is_written_as_pretty_json(
    ctx: StepContext, workspace: Path
) -> None:
    content = {"b": [1, 2], "a": "é"}
    out = await run(ctx, "write", "data.json", content)
    text = (workspace / "data.json").read_text()
    assert text == json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    assert out == {"path": "data.json", "bytes": len(text.encode())}
    assert await run(ctx, "read", "data.json", output="json") == content


async def test_append(ctx: StepContext, workspace: Path) -> None:
    await run(ctx, "append", "log/x.log", "one\n")
    assert await run(ctx, "append", "log/x.log", "two\n") == {"path": "log/x.log", "bytes": 4}
    assert (workspace / "log" / "x.log").read_text() == "one\ntwo\n"


async def test_absolute_path_inside_the_workspace(ctx: StepContext, workspace: Path) -> None:
    await run(ctx, "write", str(workspace / "abs.txt"), "x")
    assert await run(ctx, "read", str(workspace / "abs.txt")) == "x"


@pytest.mark.parametrize("path", ["../escape.txt", "a/../../escape.txt", "/etc/passwd"])
async def test_escapes_are_refused(ctx: StepContext, path: str) -> None:
    for op, content in (("read", None), ("write", "x"), ("append", "x")):
        with pytest.raises(StepExecutionError, match="outside the workspace") as info:
            await run(ctx, op, path, content)
        assert info.value.retryable is False
        assert path in str(info.value)
        assert str(ctx.workspace.resolve()) in str(info.value)
    assert not (ctx.workspace.parent / "escape.txt").exists()


async def test_symlink_pointing_outside_is_refused(
    ctx: StepContext, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (workspace / "link.txt").symlink_to(outside)
    (workspace / "dir").symlink_to(tmp_path)
    for path in ("link.txt", "dir/secret.txt"):
        with pytest.raises(StepExecutionError, match="goes through a symbolic link"):
            await run(ctx, "read", path)
        with pytest.raises(StepExecutionError, match="goes through a symbolic link"):
            await run(ctx, "write", path, "overwritten")
    assert outside.read_text() == "secret"


async def test_symlink_inside_the_workspace_is_refused_too(
    ctx: StepContext, workspace: Path
) -> None:
    (workspace / "real.txt").write_text("real")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    with pytest.raises(StepExecutionError, match="use the real path") as info:
        await run(ctx, "read", "alias.txt")
    assert info.value.error_type == "path"
    assert await run(ctx, "read", "real.txt") == "real"


async def test_invalid_utf8_is_a_permanent_error(ctx: StepContext, workspace: Path) -> None:
    (workspace / "bin.dat").write_bytes(b"ok\xff\xfe")
    with pytest.raises(StepExecutionError, match="not UTF-8 text") as info:
        await run(ctx, "read", "bin.dat")
    assert info.value.retryable is False


async def test_missing_file_is_a_permanent_error(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="does not exist") as info:
        await run(ctx, "read", "nope.txt")
    assert info.value.retryable is False


async def test_read_is_capped_with_a_marker(make_ctx: ContextFactory, workspace: Path) -> None:
    ctx = make_ctx(output_limit_bytes=1025)
    (workspace / "big.txt").write_text("é" * 2000)  # 4000 bytes; the cut splits a character
    text = await run(ctx, "read", "big.txt")
    body, marker = text.rsplit("\n", 1)
    assert body == "é" * 512
    assert marker == "…[truncated: kept 1025 of 4000 bytes]"


async def test_read_output_schema(ctx: StepContext, workspace: Path) -> None:
    (workspace / "n.json").write_text('{"n": "x"}')
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with pytest.raises(StepExecutionError, match=r"\$\.n"):
        await run(ctx, "read", "n.json", output=schema)
