"""The `file` executor: reads, writes (atomically) and appends files confined to the run's
workspace; symlinks are resolved and anything that lands outside is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from podium.errors import StepExecutionError
from podium.spec.model import FileStep, StepBase
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices
from podium.steps.output import shape_output, with_marker

_NEW_FILE_MODE = 0o644


class FileExecutor:
    """Runs `FileStep`s. All file-system work, path checks included, runs in a worker thread."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, FileStep):
            raise TypeError(f"FileExecutor cannot run a {type(step).__name__}")
        output, cut = await asyncio.to_thread(_run, step, ctx.workspace, ctx.output_limit_bytes)
        return StepResult(shape_output(output, step.output, step_id=step.id, cut=cut))


def _run(step: FileStep, workspace: Path, limit: int) -> tuple[object, tuple[int, int] | None]:
    """The step's output, and (bytes kept, file size) when a read was truncated at the cap."""
    root = workspace.resolve()
    path = confine(root, step.path)
    try:
        if step.op == "read":
            return _read(path, limit)
        data = _content_bytes(step.content)
        if step.op == "write":
            _write_atomic(path, data)
        else:
            _append(path, data)
    except OSError as exc:
        raise _os_error(step, path, exc) from exc
    return {"path": path.relative_to(root).as_posix(), "bytes": len(data)}, None


def confine(root: Path, raw: str) -> Path:
    """`raw` (relative to `root`, or absolute inside it) with symlinks resolved; refuse escapes."""
    target = (root / raw).resolve()
    if not target.is_relative_to(root):
        raise StepExecutionError(
            f"path {raw!r} resolves to {target}, outside the workspace {root}; file steps may only "
            "use paths inside the workspace",
            retryable=False,
            error_type="path",
        )
    return target


def _read(path: Path, limit: int) -> tuple[str, tuple[int, int] | None]:
    with path.open("rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        data = handle.read(limit)
        total = max(total, len(data) + len(handle.read(1)))
    truncated = total > len(data)
    text = _decode(path, data, truncated)
    if not truncated:
        return text, None
    return with_marker(text, len(data), total), (len(data), total)


def _decode(path: Path, data: bytes, truncated: bool) -> str:
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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a temp file next to `path`, fsync it, rename it over `path`, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _NEW_FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(step: FileStep, path: Path, exc: OSError) -> StepExecutionError:
    """Missing files, directories and permissions are permanent; anything else may pass."""
    permanent = (
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )
    if isinstance(exc, FileNotFoundError) and step.op == "read":
        message = f"cannot read {path}: it does not exist; write it in an earlier step"
    else:
        message = f"cannot {step.op} {path}: {exc.strerror or exc}"
    return StepExecutionError(message, retryable=not isinstance(exc, permanent), error_type="io")
