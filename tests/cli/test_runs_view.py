"""`podium runs` with duration, step counts and cost; run ids by unique prefix and `@latest`; a
stopped run says how to resume it; `cancel --reason` is shown. Real processes, a SQLite file."""

from __future__ import annotations

import json
import signal

from .conftest import Cli
from .test_cli import FAILING, GREETING, LONG


def _row(cli: Cli, run_id: str) -> str:
    return next(line for line in cli("runs").stdout.splitlines() if line.startswith(run_id + " "))


def test_runs_shows_duration_step_counts_and_failures(cli: Cli) -> None:
    cli.write("failing.yaml", FAILING)
    cli.write("greeting.yaml", GREETING)
    cli("run", "failing.yaml", "--run-id", "f1")
    cli("run", "greeting.yaml", "-i", "who=x", "--run-id", "g1")
    assert "3/3 done, 1 failed" in _row(cli, "f1")
    assert "3/3 done" in _row(cli, "g1")
    assert "failed" not in _row(cli, "g1")
    header = cli("runs").stdout.splitlines()[0]
    assert all(name in header for name in ("took", "steps", "cost"))
    listed = {d["run_id"]: d for d in json.loads(cli("runs", "--json").stdout)}
    assert listed["f1"]["steps"] == {"total": 3, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert listed["f1"]["duration_seconds"] > 0
    assert (listed["g1"]["tokens"], listed["g1"]["cost_usd"], listed["g1"]["abandoned"]) == (
        0,
        0.0,
        False,
    )


def test_a_run_is_named_by_a_unique_prefix_with_or_without_run_or_by_latest(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    for run_id in ("run_abc1", "run_abc2", "run_xyz9"):
        made = cli("run", "greeting.yaml", "-i", f"who={run_id}", "--run-id", run_id)
        assert made.returncode == 0, made.stderr
    assert cli.show("xyz")["run_id"] == "run_xyz9"
    assert cli.show("run_abc2")["run_id"] == "run_abc2"
    assert cli.show("@latest")["run_id"] == "run_xyz9"
    assert "hello run_abc1" in cli("logs", "abc1", "hello").stdout
    assert cli("events", "abc1", "--json").stdout.count('"run_id": "run_abc1"') > 3

    ambiguous = cli("show", "abc")
    assert ambiguous.returncode == 2
    assert "run_abc1" in ambiguous.stderr
    assert "run_abc2" in ambiguous.stderr
    assert "give more of the id" in ambiguous.stderr
    unknown = cli("show", "nope")
    assert unknown.returncode == 2
    assert "no run with id 'nope'" in unknown.stderr


def test_commands_that_steer_a_run_take_a_prefix_or_latest_too(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    for run_id in ("run_abc1", "run_abc2"):
        assert cli("run", "greeting.yaml", "-i", "who=x", "--run-id", run_id).returncode == 0
    resumed = cli("resume", "@latest")
    assert resumed.returncode == 0, resumed.stderr
    assert "run run_abc2 already succeeded" in resumed.stdout
    for command in (["cancel", "abc"], ["retry", "abc", "hello"], ["reject", "abc"]):
        refused = cli(*command)
        assert refused.returncode == 2, command
        assert "matches several runs (run_abc2, run_abc1)" in refused.stderr
    retried = cli("retry", "abc1", "hello")
    assert retried.returncode == 2  # found the run; a succeeded step cannot be retried
    assert "step hello is succeeded" in retried.stderr


def test_latest_in_an_empty_store_says_how_to_start_one(cli: Cli) -> None:
    cli("runs")  # creates the store
    empty = cli("show", "@latest")
    assert empty.returncode == 2
    assert "podium run" in empty.stderr


def test_a_run_stopped_by_ctrl_c_says_how_to_resume_it(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "i1")
    cli.wait_for_step(runner, "i1", "nap", "running")
    runner.send_signal(signal.SIGINT)
    runner.communicate(timeout=10)
    hint = "nobody drives it; run `podium resume i1`"
    assert hint in cli("show", "i1").stdout
    assert hint in _row(cli, "i1")
    assert json.loads(cli("runs", "--json").stdout)[0]["abandoned"] is True


def test_cancel_reason_is_shown_by_show_and_the_summary(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "c1")
    cli.wait_for_step(runner, "c1", "nap", "running")
    assert cli("cancel", "c1", "--reason", "wrong branch").returncode == 0
    out, _ = runner.communicate(timeout=15)
    assert "cancel reason: wrong branch" in out
    assert cli.show("c1")["cancel_reason"] == "wrong branch"
    lines = cli("show", "c1").stdout.splitlines()
    assert any(line.split() == ["cancel", "reason", "wrong", "branch"] for line in lines)
