"""Run the real `podium` CLI as a subprocess against a SQLite file in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PODIUM = [sys.executable, "-m", "podium.cli.app"]
COMMAND_TIMEOUT_SECONDS = 30.0
WAIT_SECONDS = 15.0


class Cli:
    """`cli("run", "wf.yaml")` runs `podium run wf.yaml --db <tmp>/podium.db` in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "podium.db"
        self.env = {k: v for k, v in os.environ.items() if k != "PODIUM_DB"}
        self._background: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [*PODIUM, *args, "--db", str(self.db)]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a command in the background (its pipes are read by `close`)."""
        if not self.db.exists():
            # Create the store first: two processes creating one SQLite file at the same moment
            # can race on `PRAGMA journal_mode = WAL`, and SQLite refuses one of them at once.
            assert self("runs").returncode == 0
        proc = subprocess.Popen(
            self.argv(*args),
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        self._background.append(proc)
        return proc

    def show(self, run_id: str) -> dict[str, Any]:
        result = self("show", run_id, "--json")
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def wait_for_step(
        self, runner: subprocess.Popen[str], run_id: str, step_id: str, status: str
    ) -> None:
        """Poll `show --json` until the step has `status`, while `runner` is still alive."""
        deadline = time.monotonic() + WAIT_SECONDS
        result = None
        while time.monotonic() < deadline and runner.poll() is None:
            result = self("show", run_id, "--json")
            if result.returncode == 0:
                steps = {s["id"]: s for s in json.loads(result.stdout)["steps"]}
                if steps[step_id]["status"] == status:
                    return
            time.sleep(0.1)
        out, err = runner.communicate() if runner.poll() is not None else ("(running)", "")
        raise AssertionError(
            f"step {step_id} of {run_id} never became {status}; last show: {result}; "
            f"runner exit {runner.returncode}, stdout {out!r}, stderr {err!r}"
        )

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def close(self) -> None:
        for proc in self._background:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _default_sigint() -> None:
    """A shell without job control starts background jobs with SIGINT ignored, and children
    inherit that; the Ctrl-C test needs the default disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    try:
        yield runner
    finally:
        runner.close()
        kill_recorded_groups(tmp_path)


def kill_recorded_groups(folder: Path) -> None:
    """Steps in these tests write their process-group id to `*.pid`; never leave one behind."""
    for pid_file in folder.glob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
