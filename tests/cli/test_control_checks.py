"""retry, skip, cancel, approve and reject are checked before anything is posted: an unknown run,
an unknown step or a step in the wrong state exits 2 with one line saying what is wrong, and the
store's `signals` table stays empty — also for a run another process is driving, the case where
a signal would be posted."""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections.abc import Iterator

import pytest

from .conftest import Cli, kill_recorded_groups
from .test_cli import GREETING, LONG, assert_one_line_error
from .test_planning_cli import EXAMPLES, SCRIPT

# Runs until the test ends: a timed step could finish while a slow machine is still working
# through the matrix. Sandboxed, the loop dies with the engine the fixture's cleanup kills.
ENDLESS = """\
name: endless
steps:
  - id: nap
    kind: shell
    shell: sh
    run: while true; do sleep 1; done
  - id: after
    kind: shell
    run: echo after
    needs: [nap]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """One store with a finished run (`done`), a run parked on an interrupted step (`parked`),
    a plan awaiting approval (`plan`) and a run another process drives (`live`)."""
    cli = Cli(tmp_path_factory.mktemp("control"))
    try:
        _prepare(cli)
        assert signals(cli) == 0
        yield cli
    finally:
        cli.close()
        kill_recorded_groups(cli.folder)


def _prepare(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    cli.write("long.yaml", LONG)
    cli.write("endless.yaml", ENDLESS)
    assert cli("run", "greeting.yaml", "-i", "who=x", "--run-id", "done").returncode == 0
    crashed = cli.start("run", "long.yaml", "--run-id", "parked")
    cli.wait_for_step(crashed, "parked", "nap", "running")
    crashed.send_signal(signal.SIGKILL)
    crashed.communicate(timeout=10)
    assert cli("resume", "parked").returncode == 3
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    planning = ["--agents", str(cli.folder), "--model", f"scripted:{SCRIPT}"]
    assert cli("plan", "Brief me", "--confirm", "--run-id", "plan", *planning).returncode == 3
    live = cli.start("run", "endless.yaml", "--run-id", "live")
    cli.wait_for_step(live, "live", "nap", "running")


def signals(cli: Cli) -> int:
    with sqlite3.connect(cli.db) as db:
        (count,) = db.execute("SELECT count(*) FROM signals").fetchone()
    return int(count)


UNKNOWN_RUN = [
    (["retry", "nope", "nap"], ["no run with id 'nope'", "podium runs"]),
    (["skip", "nope", "nap"], ["no run with id 'nope'"]),
    (["cancel", "nope"], ["no run with id 'nope'"]),
    (["approve", "nope"], ["no run with id 'nope'"]),
    (["reject", "nope"], ["no run with id 'nope'"]),
]
UNKNOWN_STEP = [
    (["retry", "live", "ghost"], ["no step 'ghost'", "after, nap"]),
    (["skip", "live", "ghost"], ["no step 'ghost'", "after, nap"]),
    (["approve", "live", "ghost"], ["no step 'ghost'"]),
    (["reject", "live", "ghost"], ["no step 'ghost'"]),
    (["approve", "plan", "ghost"], ["no step 'ghost'", "plan"]),
    (["retry", "parked", "ghost"], ["no step 'ghost'"]),
]
WRONG_STATE = [
    (["retry", "live", "nap"], ["step nap is running", "failed, interrupted"]),
    (["skip", "live", "nap"], ["step nap is running", "cancel the run"]),
    (["approve", "live"], ["nothing to approve"]),
    (["reject", "live"], ["nothing to approve"]),
    (["approve", "live", "nap"], ["step nap is not awaiting approval"]),
    (["retry", "done", "hello"], ["step hello is succeeded"]),
    (["skip", "done", "hello"], ["step hello is succeeded", "nothing to skip"]),
    (["cancel", "done"], ["already succeeded", "nothing to cancel"]),
    (["approve", "done"], ["nothing to approve"]),
    (["reject", "done"], ["nothing to approve"]),
    (["retry", "parked", "after"], ["step after is pending"]),
    (["approve", "parked"], ["nothing to approve"]),
    (["retry", "plan", "plan"], ["step plan is waiting"]),
]


@pytest.mark.parametrize(
    ("command", "fragments"),
    [
        pytest.param(command, fragments, id="-".join(command))
        for command, fragments in UNKNOWN_RUN + UNKNOWN_STEP + WRONG_STATE
    ],
)
def test_a_request_that_cannot_apply_exits_2_and_posts_nothing(
    runs: Cli, command: list[str], fragments: list[str]
) -> None:
    result = runs(*command)

    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_line_error(result.stderr, *fragments)
    assert signals(runs) == 0


def test_the_live_run_was_left_alone(runs: Cli) -> None:
    """Last in this module: no refused request disturbed the process driving `live`."""
    assert runs.show("live")["status"] == "running"
    assert {s["id"]: s["status"] for s in runs.show("live")["steps"]} == {
        "nap": "running",
        "after": "pending",
    }
    assert signals(runs) == 0


def test_cancel_of_the_live_run_is_the_one_that_posts(runs: Cli) -> None:
    """The check above is not vacuous: a valid request for a driven run does post a signal."""
    result = runs("cancel", "live")
    assert result.returncode == 0, result.stderr
    assert "cancel requested" in result.stdout
    assert signals(runs) == 1
