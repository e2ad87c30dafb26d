"""A shell step's whole stdout and stderr, as it writes them: one log file per attempt at
`<workspace>/.podium/logs/<run>/<step>.<attempt>.jsonl`, one JSON object per line of output::

    {"at": float (unix time), "stream": "stdout" | "stderr", "text": str}

The step's output (stdout, capped by `output_limit_bytes`) is what the run keeps in its events;
the log is for people reading along (`podium logs`, `--follow`) and is neither read back by the
engine nor replayed. It is capped too (`LOG_LIMIT_FACTOR` times the output cap): past the cap a
last record says how much was left out. A line longer than `MAX_LINE` is written in pieces.
Writing never fails the step: a log that cannot be written is given up, and the step runs on.
`podium prune` removes a run's log folder with the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from podium.core.redact import PATTERNS_ONLY, Redactor
from podium.spec.secrets import MARKER
from podium.steps.procs import remove_run_folder

LOG_LIMIT_FACTOR = 8
MAX_LINE = 16 * 1024
_KEY_BEGIN = re.compile(r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END[A-Z ]{0,40}PRIVATE KEY-----")


def logs_dir(workspace: Path, run_id: str) -> Path:
    return workspace / ".podium" / "logs" / run_id


def log_path(workspace: Path, run_id: str, step_id: str, attempt: int) -> Path:
    return logs_dir(workspace, run_id) / f"{step_id}.{attempt}.jsonl"


def forget_run_logs(workspace: Path, run_id: str, *, dry_run: bool = False) -> list[Path]:
    """Delete a run's log files and then their folder if nothing else is in it (for a run being
    deleted); return the paths removed (with `dry_run`, the ones that would be)."""
    return remove_run_folder(logs_dir(workspace, run_id), run_id, "*.jsonl", dry_run=dry_run)


@dataclass
class _Stream:
    name: str
    pending: bytearray = field(default_factory=bytearray)


class StepLog:
    """Writes one attempt's log; `feed(stream, chunk)` as chunks arrive, `close()` at the end.
    Each line is redacted (`redactor`: the run's secrets) before it is written, and the lines
    of a private key block are redacted whole, from its BEGIN line to its END line."""

    def __init__(self, path: Path, limit_bytes: int, redactor: Redactor = PATTERNS_ONLY) -> None:
        self._redactor = redactor
        self._in_key = False
        self._path = path
        self._limit = limit_bytes
        self._written = 0
        self._dropped = 0
        self._file: IO[str] | None = None
        self._done = False  # closed, or the file could not be written
        self._streams = {name: _Stream(name) for name in ("stdout", "stderr")}

    def feed(self, stream: str, chunk: bytes) -> None:
        if self._done:
            return
        pending = self._streams[stream].pending
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0 or len(pending) - start > MAX_LINE:
            stop = end if end >= 0 and end - start <= MAX_LINE else start + MAX_LINE
            self._record(stream, bytes(pending[start:stop]))
            start = stop + 1 if stop == end else stop
        del pending[:start]
        self._flush()

    def close(self) -> None:
        if self._done:
            return
        for stream in self._streams.values():
            if stream.pending:
                self._record(stream.name, bytes(stream.pending))
                stream.pending.clear()
        if self._dropped:
            note = f"[log capped at {self._limit} bytes: {self._dropped} more bytes not kept]"
            self._write({"at": time.time(), "stream": "stderr", "text": note})
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self._done = True  # closed: later feeds are ignored

    def _record(self, stream: str, data: bytes) -> None:
        if self._dropped or self._written + len(data) > self._limit:  # from here on, all
            self._dropped += len(data) + 1
            return
        self._written += len(data) + 1
        text = self._redacted(data.decode("utf-8", errors="replace").removesuffix("\r"))
        self._write({"at": time.time(), "stream": stream, "text": text})

    def _redacted(self, text: str) -> str:
        if self._in_key:
            self._in_key = _KEY_END.search(text) is None
            return MARKER
        if _KEY_BEGIN.search(text) and not _KEY_END.search(text):
            self._in_key = True
        return self._redactor.text(text)

    def _write(self, record: dict[str, Any]) -> None:
        if self._done:
            return
        try:
            if self._file is None:  # opened at the first line: a silent step leaves no file
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self._path.open("a", encoding="utf-8")
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError:
            self._give_up()

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                self._give_up()

    def _give_up(self) -> None:
        with contextlib.suppress(OSError):
            if self._file is not None:
                self._file.close()
        self._file = None
        self._done = True


def read_records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete records from byte `offset` on, and the offset after the last one read (a
    line still being written is left for the next read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = list(_parse(data[:end]))
    return records, offset + end


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                yield record


def attempt_logs(workspace: Path, run_id: str, step_id: str) -> list[tuple[int, Path]]:
    """The step's log files, by attempt."""
    folder = logs_dir(workspace, run_id)
    prefix = f"{step_id}."
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            name = entry.name
            if name.startswith(prefix) and name.endswith(".jsonl"):
                number = name[len(prefix) : -len(".jsonl")]
                if number.isdigit():
                    found.append((int(number), Path(entry.path)))
    return sorted(found)
