"""Where an MCP server's stderr goes: `<workspace>/.podium/logs/mcp-<server>.log` (appended), not
the terminal. `ServerLog` pumps the pipe the server writes to, keeps its last lines for error
messages, and holds what arrives before a call names the workspace. Every line is redacted
first (the key formats, and the server's own `env` and `headers` values)."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path

from podium.core.redact import PATTERNS_ONLY, Redactor

TAIL_LINES = 12
_PENDING_LINES = 1000
_LINE_LIMIT = 1 << 20


def log_path(workspace: Path, server: str) -> Path:
    """The file a server's stderr is appended to, one per server per workspace."""
    return workspace / ".podium" / "logs" / f"mcp-{server}.log"


class ServerLog:
    """One server's stderr, across its restarts: the lines go to the log file of the workspace
    named last (`use_workspace`), and are held until one is named."""

    def __init__(self, server: str, redactor: Redactor = PATTERNS_ONLY) -> None:
        self.server = server
        self._redactor = redactor
        self.path: Path | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._pending: deque[str] = deque(maxlen=_PENDING_LINES)

    def use_workspace(self, workspace: Path) -> None:
        path = log_path(workspace, self.server)
        if path == self.path:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        pending = list(self._pending)
        self._pending.clear()
        self._write(pending)

    def line(self, text: str) -> None:
        """Record one line the server (or Podium, about the server) wrote."""
        text = self._redactor.text(text)
        self._tail.append(text)
        if self.path is None:
            self._pending.append(text)
        else:
            self._write([text])

    def mark_start(self) -> None:
        """A new process starts: the tail is about it alone."""
        self._tail.clear()

    def tail(self) -> str:
        """The last lines of stderr, for an error message ('' when there were none)."""
        lines = [line for line in self._tail if line.strip()]
        if not lines:
            return ""
        where = f" (all of it in {self.path})" if self.path is not None else ""
        return f"; its stderr ends{where}:\n    " + "\n    ".join(lines)

    def _write(self, lines: list[str]) -> None:
        if lines and self.path is not None:
            with self.path.open("a", encoding="utf-8") as file:
                file.writelines(line + "\n" for line in lines)


class StderrPipe:
    """A pipe for one server process's stderr, pumped into a `ServerLog` by a task."""

    def __init__(self, log: ServerLog) -> None:
        read_fd, write_fd = os.pipe()
        # the child's end: `spawned` closes it once the child holds its own copy
        self.writer = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        self._log = log
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def spawned(self) -> None:
        """The child holds the pipe's write end now: close ours, so EOF means the child is gone."""
        self.writer.close()

    async def drained(self, timeout_seconds: float = 1.0) -> None:
        """Wait (bounded) until the child's last line is in, then stop the pump."""
        self.spawned()
        await asyncio.wait([self._task], timeout=timeout_seconds)
        self._task.cancel()
        await asyncio.wait([self._task])

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        transport: asyncio.BaseTransport | None = None
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), self._reader
            )
            while line := await reader.readline():
                self._log.line(line.decode(errors="replace").rstrip("\r\n"))
        except ValueError:  # a line over the limit: the rest is not worth a crash
            self._log.line("[podium] stopped reading stderr: a line over 1 MiB")
        finally:
            if transport is not None:
                transport.close()
            else:
                self._reader.close()
