"""The shell sandbox through the real `podium` process: descendants of a sandboxed step die when
the engine is SIGKILLed and stay gone through `podium resume` (the same run unsandboxed leaves
them running, so the probe can fail), and an engine whose PATH has no bwrap refuses the step
with how to install it or opt out."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from tests.processes import survivors

from .conftest import Cli, wait_until

ESCAPERS = 3  # setsid, nohup and a double fork

# Attempt 1 starts the escapers and waits; the resumed attempt 2 finds `started` and finishes.
# `idempotent: true` so that resume re-runs the interrupted step instead of parking it.
DETACHING = """\
name: detaching
steps:
  - id: spawn
    kind: shell
    shell: sh
    idempotent: true
    run: |
      if [ -f started ]; then echo resumed; exit 0; fi
      touch started
      beat='while :; do date +%s%N > beat-$0; sleep 0.05; done'
      setsid sh -c "$beat" {marker}-setsid </dev/null >/dev/null 2>&1 &
      nohup sh -c "$beat" {marker}-nohup </dev/null >/dev/null 2>&1 &
      (sh -c "$beat" {marker}-fork </dev/null >/dev/null 2>&1 &) &
      exec sleep 60
"""


def _beats(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in folder.glob("beat-*")}


def _kill_engine_while_escapers_beat(cli: Cli, marker: str, *, sandbox: bool) -> None:
    spec = DETACHING.replace("{marker}", marker)
    if not sandbox:
        spec = spec.replace("idempotent: true", "idempotent: true\n    sandbox: false")
    cli.write("detaching.yaml", spec)
    engine = cli.start("run", "detaching.yaml", "--run-id", "d1")
    wait_until(lambda: len(_beats(cli.folder)) == ESCAPERS, "the three heartbeats to start")
    assert len(survivors(marker)) == ESCAPERS  # the probe sees them while they live
    engine.send_signal(signal.SIGKILL)
    engine.communicate(timeout=10)


def _gone_and_silent(cli: Cli, marker: str) -> bool:
    """No survivor, and no heartbeat file changes over six heartbeat periods."""
    if survivors(marker):
        return False
    before = _beats(cli.folder)
    time.sleep(0.3)
    return _beats(cli.folder) == before


def test_descendants_of_a_sandboxed_step_die_with_a_killed_engine_and_after_resume(
    cli: Cli,
) -> None:
    marker = f"m{uuid.uuid4().hex}"
    _kill_engine_while_escapers_beat(cli, marker, sandbox=True)
    # bwrap --die-with-parent: the engine's death takes the step's PID namespace with it
    wait_until(lambda: _gone_and_silent(cli, marker), "every escaper to be gone", 5)

    resumed = cli("resume", "d1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = cli.show("d1")
    assert doc["status"] == "succeeded"
    assert doc["steps"][0]["output"] == "resumed"
    assert survivors(marker) == []
    assert _gone_and_silent(cli, marker)


def test_unsandboxed_the_same_descendants_outlive_the_engine_and_resume(cli: Cli) -> None:
    marker = f"m{uuid.uuid4().hex}"
    try:
        _kill_engine_while_escapers_beat(cli, marker, sandbox=False)
        resumed = cli("resume", "d1")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        time.sleep(0.3)
        assert len(survivors(marker)) >= 1  # setsid/nohup/double fork escape the group kill
    finally:
        for pid in survivors(marker):
            os.kill(pid, signal.SIGKILL)


NEEDS_BWRAP = """\
name: needs-bwrap
steps:
  - {id: boxed, kind: shell, run: /usr/bin/touch ran.txt}
"""


def test_an_engine_without_bwrap_on_its_path_refuses_and_says_how_to_fix(cli: Cli) -> None:
    empty = cli.folder / "empty-bin"
    empty.mkdir()
    cli.env["PATH"] = str(empty)  # the engine itself is started by absolute path
    cli.write("needs.yaml", NEEDS_BWRAP)
    result = cli("run", "needs.yaml", "--run-id", "n1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (cli.folder / "ran.txt").exists()
    step = cli.show("n1")["steps"][0]
    assert step["status"] == "failed"
    error = " ".join(str(step["error"]).split())  # the document may wrap long lines
    assert "bwrap" in error
    assert "apt-get install bubblewrap" in error
    assert "`sandbox: false` on the step" in error
    assert "`[policy.sandbox] enabled = false` in podium.toml" in error
    assert "apt-get install bubblewrap" in result.stdout + result.stderr

    cli.write("needs.yaml", NEEDS_BWRAP.replace("ran.txt}", "ran.txt, sandbox: false}"))
    opted_out = cli("run", "needs.yaml", "--run-id", "n2")
    assert opted_out.returncode == 0, opted_out.stdout + opted_out.stderr
    assert (cli.folder / "ran.txt").exists()
