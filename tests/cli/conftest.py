"""Run the real `podium` CLI as a subprocess against a SQLite file in a temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.store import open_store

PODIUM = [sys.executable, "-m", "podium.cli.app"]
COMMAND_TIMEOUT_SECONDS = 30.0
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05


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
            # (`podium runs` would not do: commands that only read never create a store.)
            asyncio.run(_create_store(self.db))
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
        last: list[subprocess.CompletedProcess[str]] = []

        def reached() -> bool:
            if runner.poll() is not None:
                out, err = runner.communicate()
                raise AssertionError(
                    f"{run_id} ended (exit {runner.returncode}) before step {step_id} was "
                    f"{status}; stdout {out!r}, stderr {err!r}"
                )
            last[:] = [self("show", run_id, "--json")]
            if last[0].returncode != 0:
                return False
            steps = {s["id"]: s for s in json.loads(last[0].stdout)["steps"]}
            return bool(steps[step_id]["status"] == status)

        wait_until(reached, lambda: f"step {step_id} of {run_id} to be {status}; last: {last}")

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def close(self) -> None:
        for proc in self._background:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


async def _create_store(path: Path) -> None:
    await (await open_store(path)).close()


def wait_until(
    condition: Callable[[], bool],
    what: str | Callable[[], str],
    timeout_seconds: float = WAIT_SECONDS,
) -> None:
    """Check `condition` until it holds; fail naming `what` after `timeout_seconds`. The pause
    between checks only paces the polling: the test goes on as soon as the condition holds."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"waited {timeout_seconds:g} s for {said}")
        time.sleep(POLL_SECONDS)


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
