"""The `file` executor: reads, writes (atomically) and appends files confined to the run's
workspace (steps/confined.py: no link followed at any component, no hard-linked files, never
Podium's own state)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from podium.errors import StepExecutionError
from podium.spec.model import FileStep, StepBase
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices
from podium.steps.confined import Confinement, append, read_bytes, write_atomic
from podium.steps.output import shape_output, with_marker


class FileExecutor:
    """Runs `FileStep`s. All file-system work, path checks included, runs in a worker thread."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, FileStep):
            raise TypeError(f"FileExecutor cannot run a {type(step).__name__}")
        output, cut = await asyncio.to_thread(_run, step, ctx)
        return StepResult(shape_output(output, step.output, step_id=step.id, cut=cut))


def confinement(ctx: StepContext) -> Confinement:
    """The confinement rules of an attempt: its workspace, protected paths and file policy."""
    allowed = ctx.policy.files.podium_state
    return Confinement(ctx.workspace, ctx.protected, podium_state=allowed)


def _run(step: FileStep, ctx: StepContext) -> tuple[object, tuple[int, int] | None]:
    """The step's output, and (bytes kept, file size) when a read was truncated at the cap."""
    box = confinement(ctx)
    try:
        if step.op == "read":
            return _read(box, step.path, ctx.output_limit_bytes)
        data = _content_bytes(step.content)
        if step.op == "write":
            relative = write_atomic(box, step.path, data)
        else:
            relative = append(box, step.path, data)
    except OSError as exc:
        raise _os_error(step, exc) from exc
    return {"path": relative, "bytes": len(data)}, None


def _read(box: Confinement, path: str, limit: int) -> tuple[str, tuple[int, int] | None]:
    data, total = read_bytes(box, path, limit)
    truncated = total > len(data)
    text = _decode(path, data, truncated)
    if not truncated:
        return text, None
    return with_marker(text, len(data), total), (len(data), total)


def _decode(path: str, data: bytes, truncated: bool) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.reason == "unexpected end of data" and exc.end == len(data):
            return data[: exc.start].decode("utf-8")  # the cut fell inside a character
        raise StepExecutionError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); file steps read text "
            "only — use a shell step for binary files",
            retryable=False,
            error_type="encoding",
        ) from None


def _content_bytes(content: Any) -> bytes:
    if isinstance(content, str):
        return content.encode()
    try:
        return (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise StepExecutionError(
            f"content cannot be written as JSON ({exc}); give text or JSON data",
            retryable=False,
            error_type="usage",
        ) from None


def _os_error(step: FileStep, exc: OSError) -> StepExecutionError:
    """Missing files, directories and permissions are permanent; anything else may pass."""
    permanent = (
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )
    if isinstance(exc, FileNotFoundError) and step.op == "read":
        message = f"cannot read {step.path}: it does not exist; write it in an earlier step"
    else:
        message = f"cannot {step.op} {step.path}: {exc.strerror or exc}"
    return StepExecutionError(message, retryable=not isinstance(exc, permanent), error_type="io")
