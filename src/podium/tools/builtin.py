"""The built-in tools: `read_file`, `write_file` and `http_get`. They run through the `file` and
`http` step executors, so a tool gets exactly the step kinds' workspace confinement (symlink escapes
refused), atomic writes, URL checks (on every redirect too) and output caps.

The executors are handed in (`builtin_tools(executor_for)`): this adapter sees only the executor
port, and `podium.tools` (which wires the adapters) passes `podium.steps.executor_for`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from pydantic import ValidationError

from podium.errors import StepExecutionError
from podium.llm.base import ToolSpec
from podium.spec.model import FileStep, HttpStep, StepBase
from podium.steps.base import Executor, StepContext
from podium.tools.base import Tool, ToolAnnotations, ToolContext, ToolError

HTTP_GET_TIMEOUT_SECONDS = 30.0
_STEP_ID = "tool"
_S = TypeVar("_S", bound=StepBase)
ExecutorFor: TypeAlias = Callable[[str], Executor]
"""The executor of a step kind (`"file"`, `"http"`)."""


def _schema(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": d} for name, d in properties.items()
        },
        "required": list(properties),
        "additionalProperties": False,
    }


class _StepTool:
    """A tool that runs one step of a kind through that kind's executor."""

    def __init__(self, executor_for: ExecutorFor) -> None:
        self._executor_for = executor_for

    async def _execute(self, kind: str, step: StepBase, ctx: ToolContext, tool: str) -> object:
        step_ctx = StepContext(
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            attempt=1,
            idempotency_key=f"{ctx.run_id}:{ctx.step_id}:{tool}",
            workspace=ctx.workspace,
            output_limit_bytes=ctx.output_limit_bytes,
            policy=ctx.policy,
            protected=ctx.protected,
        )
        try:
            result = await self._executor_for(kind).execute(step, step_ctx)
        except StepExecutionError as exc:
            raise ToolError(f"{tool} failed: {exc}") from None
        return result.output


class ReadFileTool(_StepTool):
    """Reads a UTF-8 text file in the run's workspace (capped at the output limit)."""

    annotations = ToolAnnotations(read_only=True, idempotent=True, destructive=False)

    spec = ToolSpec(
        "read_file",
        "Read a UTF-8 text file from the workspace. Long files are cut at the output limit.",
        _schema(path="Path relative to the workspace."),
    )

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        step = _step(FileStep, id=_STEP_ID, op="read", path=_text(arguments, "path", "read_file"))
        output = await self._execute("file", step, ctx, "read_file")
        return output if isinstance(output, str) else json.dumps(output)


class WriteFileTool(_StepTool):
    """Writes (replaces) a text file in the run's workspace, atomically."""

    annotations = ToolAnnotations(read_only=False, idempotent=True, destructive=True)

    spec = ToolSpec(
        "write_file",
        "Write text to a file in the workspace, replacing it if it exists; folders are created.",
        _schema(path="Path relative to the workspace.", content="The whole new text of the file."),
    )

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        path = _text(arguments, "path", "write_file")
        content = _text(arguments, "content", "write_file", allow_empty=True)
        step = _step(FileStep, id=_STEP_ID, op="write", path=path, content=content)
        output = await self._execute("file", step, ctx, "write_file")
        written = output if isinstance(output, dict) else {}
        return f"wrote {written.get('bytes', len(content.encode()))} bytes to {written.get('path')}"


class HttpGetTool(_StepTool):
    """Fetches a URL with GET (the http step's URL checks apply) and returns the body as text."""

    annotations = ToolAnnotations(read_only=True, idempotent=True, destructive=False)

    spec = ToolSpec(
        "http_get",
        "Fetch a web page or API response with HTTP GET and return its body as text (capped).",
        _schema(url="A full http:// or https:// URL."),
    )

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        url = _text(arguments, "url", "http_get")
        step = _step(HttpStep, id=_STEP_ID, url=url, method="GET", output="text")
        try:
            async with asyncio.timeout(HTTP_GET_TIMEOUT_SECONDS):
                output = await self._execute("http", step, ctx, "http_get")
        except TimeoutError:
            message = f"http_get: no answer from {url} in {HTTP_GET_TIMEOUT_SECONDS:g} s"
            raise ToolError(message) from None
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def builtin_tools(executor_for: ExecutorFor) -> dict[str, Tool]:
    """A fresh instance of every built-in tool, by name, running steps with `executor_for`."""
    tools: list[Tool] = [cls(executor_for) for cls in (ReadFileTool, WriteFileTool, HttpGetTool)]
    return {tool.spec.name: tool for tool in tools}


def _text(arguments: dict[str, Any], key: str, tool: str, *, allow_empty: bool = False) -> str:
    value = arguments.get(key)
    if not isinstance(value, str) or not (value or allow_empty):
        kind = "a string" if allow_empty else "a non-empty string"
        raise ToolError(f"{tool} needs {kind} {key!r} argument")
    return value


def _step(cls: type[_S], **fields: Any) -> _S:
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise ToolError(f"invalid arguments: {exc.errors()[0]['msg']}") from None
