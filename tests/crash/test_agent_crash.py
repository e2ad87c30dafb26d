"""The durable agent loop under SIGKILL: a real process is killed mid-step; the process that
resumes the run replays what was recorded, so no model turn and no tool call that completed is
made again, and a side-effecting call that was in flight interrupts the step for a person."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _start(mode: str, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.crash.agent_world", mode, str(tmp_path / "p.db")]
    return subprocess.Popen(
        [*argv, str(tmp_path), *extra], cwd=ROOT, text=True, stderr=subprocess.PIPE
    )


def _kill_when_ready(process: subprocess.Popen[str], tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the child never reached the point to kill it at"
        time.sleep(0.01)  # a file another process writes: looked at, not waited for by time
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if process.stderr is not None:
        process.stderr.close()


def _lines(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    return path.read_text().split() if path.exists() else []


def _resume(tmp_path: Path) -> str:
    resumed = _start("resume", tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    return (tmp_path / "result").read_text().strip()


def test_a_killed_agent_step_resumes_without_repeating_anything(tmp_path: Path) -> None:
    _kill_when_ready(_start("run", tmp_path, "--hang-model-at", "2"), tmp_path)
    assert _lines(tmp_path, "model.log") == ["1", "2"]
    assert (_lines(tmp_path, "lookup.log"), _lines(tmp_path, "ledger.log")) == ([], ["first"])
    assert _resume(tmp_path) == "succeeded succeeded"
    assert _lines(tmp_path, "model.log") == ["1", "2", "2"]  # turn 1 came from the log
    assert _lines(tmp_path, "ledger.log") == ["first"]  # the side effect happened once


def test_a_side_effect_in_flight_at_the_kill_interrupts_the_step(tmp_path: Path) -> None:
    _kill_when_ready(_start("run", tmp_path, "--hang-ledger"), tmp_path)
    assert _lines(tmp_path, "ledger.log") == ["first"]
    assert _resume(tmp_path) == "waiting interrupted"
    assert _lines(tmp_path, "ledger.log") == ["first"]  # not made a second time
    assert _lines(tmp_path, "model.log") == ["1"]
