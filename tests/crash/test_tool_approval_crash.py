"""SIGKILL with an agent's destructive tool call held for a person, then approve it from another
process: the call is made exactly once and the model turn before it is never asked again. SIGKILL
again while the approved call is in flight: the resuming process interrupts the step instead of
making the call a second time (an unsafe call in flight may have had its effect).

The traces are files the model and the tools append to (one line per call); the run's state is
read from the SQLite file directly, trusting nothing the engine says about itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .harness import read_rows

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0


def _start(mode: str, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.crash.tool_world", mode, str(tmp_path / "p.db")]
    return subprocess.Popen(
        [*argv, str(tmp_path), *extra], cwd=ROOT, text=True, stderr=subprocess.PIPE
    )


def _kill_when(process: subprocess.Popen[str], ready: object) -> None:
    """SIGKILL `process` once `ready()` holds (polled: another process makes it true)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not ready():  # type: ignore[operator]
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the child never reached the point to kill it at"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if process.stderr is not None:
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def _lines(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    return path.read_text().split() if path.exists() else []


def _kinds(tmp_path: Path) -> list[str]:
    return [row.kind for row in read_rows(tmp_path / "p.db", "crash")]


def _park_and_kill(tmp_path: Path) -> None:
    """Run until the held call is recorded, then SIGKILL the process that drives the run."""
    _kill_when(_start("run", tmp_path), lambda: "approval.requested" in _kinds(tmp_path))
    assert _lines(tmp_path, "remove.log") == []
    assert (_lines(tmp_path, "model.log"), _lines(tmp_path, "lookup.log")) == (["1"], ["-"])


def _finish(mode: str, tmp_path: Path) -> str:
    process = _start(mode, tmp_path)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return (tmp_path / "result").read_text().strip()


def test_killed_while_parked_then_approved_elsewhere_the_call_is_made_once(
    tmp_path: Path,
) -> None:
    _park_and_kill(tmp_path)
    assert _finish("approve", tmp_path) == "succeeded succeeded"
    assert _lines(tmp_path, "remove.log") == ["a.txt"]  # exactly once
    assert _lines(tmp_path, "model.log") == ["1", "2"]  # turn 1 came from the log
    assert _lines(tmp_path, "lookup.log") == ["-"]  # the safe call of that turn: not again
    kinds = _kinds(tmp_path)
    assert (kinds.count("approval.requested"), kinds.count("approval.granted")) == (1, 1)


def test_killed_while_the_approved_call_is_in_flight_it_is_not_made_again(
    tmp_path: Path,
) -> None:
    _park_and_kill(tmp_path)
    approving = _start("approve", tmp_path, "--hang-tool")
    _kill_when(approving, lambda: (tmp_path / "ready").exists())
    assert _lines(tmp_path, "remove.log") == ["a.txt"]
    assert _finish("resume", tmp_path) == "waiting interrupted"
    assert _lines(tmp_path, "remove.log") == ["a.txt"]  # not made a second time
    assert _lines(tmp_path, "model.log") == ["1"]
    assert _kinds(tmp_path).count("approval.requested") == 1  # not asked again either
