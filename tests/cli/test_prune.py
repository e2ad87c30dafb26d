"""`podium prune` as a real process on a real SQLite file: what goes (finished runs, their events
and signals, their ledger under the workspace's .podium/procs), what stays (young, live and parked
runs, everything else in the workspace), --dry-run, and bad arguments."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from .conftest import Cli
from .test_cli import FAILING, GREETING, LONG, assert_one_line_error
from .test_control_checks import ENDLESS

DAY_SECONDS = 86_400


def rows(cli: Cli, table: str, run_id: str) -> int:
    with sqlite3.connect(cli.db) as db:
        (count,) = db.execute(
            f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)
        ).fetchone()
    return int(count)


def age(cli: Cli, run_id: str, days: float) -> None:
    """Make the run look last updated `days` ago (the store keeps instants as unix seconds)."""
    with sqlite3.connect(cli.db) as db:
        db.execute(
            "UPDATE runs SET updated_at = updated_at - ? WHERE run_id = ?",
            (days * DAY_SECONDS, run_id),
        )


def ledger(workspace: Path, run_id: str, step_id: str = "nap") -> Path:
    """A ledger entry as podium.steps.procs writes one for a shell step's process group."""
    folder = workspace / ".podium" / "procs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / f"{step_id}.json"
    entry.write_text(json.dumps({"pgid": 999_999, "started": 1, "boot": "gone"}))
    return entry


def listed(cli: Cli) -> list[str]:
    result = cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    return [r["run_id"] for r in json.loads(result.stdout)]


@pytest.fixture
def three_runs(cli: Cli) -> Cli:
    """`old` succeeded and `bad` failed 40 days ago; `new` succeeded just now."""
    cli.write("greeting.yaml", GREETING)
    cli.write("failing.yaml", FAILING)
    assert cli("run", "greeting.yaml", "-i", "who=a", "--run-id", "old").returncode == 0
    assert cli("run", "failing.yaml", "--run-id", "bad").returncode == 1
    assert cli("run", "greeting.yaml", "-i", "who=b", "--run-id", "new").returncode == 0
    age(cli, "old", 40)
    age(cli, "bad", 40)
    return cli


def test_prune_removes_old_finished_runs_with_their_events_and_ledgers(three_runs: Cli) -> None:
    cli = three_runs
    mine = ledger(cli.folder, "old")
    neighbour = ledger(cli.folder, "old-but-another-run")
    notes = cli.write(".podium/notes.txt", "not podium's bookkeeping")
    logs = cli.folder / ".podium" / "logs" / "bad"  # what its shell steps wrote
    assert sorted(p.name for p in logs.iterdir()) == ["broken.1.jsonl", "ok.1.jsonl"]

    result = cli("prune")

    assert result.returncode == 0, result.stderr
    assert "removed 2 runs" in result.stdout
    assert "bad" in result.stdout
    assert "old" in result.stdout
    assert listed(cli) == ["new"]
    assert (rows(cli, "events", "old"), rows(cli, "events", "bad")) == (0, 0)
    assert rows(cli, "events", "new") > 0
    assert not mine.exists()
    assert not mine.parent.exists()
    assert neighbour.exists()  # another run's ledger, whose id only starts the same
    assert not logs.exists()
    assert notes.read_text() == "not podium's bookkeeping"
    assert (cli.folder / "greeting.txt").exists()  # the workflow's own output stays


def test_status_and_age_choose_what_goes_and_json_lists_it(three_runs: Cli) -> None:
    cli = three_runs
    result = cli("prune", "--status", "failed", "--older-than", "2w", "--json")

    assert result.returncode == 0, result.stderr
    documents = json.loads(result.stdout)
    assert [(d["run_id"], d["status"]) for d in documents] == [("bad", "failed")]
    assert set(documents[0]) == {
        "run_id",
        "workflow",
        "status",
        "created_at",
        "updated_at",
        "wake_at",
        "queue",
    }
    assert sorted(listed(cli)) == ["new", "old"]
    assert json.loads(cli("prune", "--older-than", "41d", "--json").stdout) == []
    assert "nothing to prune" in cli("prune", "--older-than", "41d").stdout


def test_dry_run_lists_what_would_go_and_changes_nothing(three_runs: Cli) -> None:
    cli = three_runs
    entry = ledger(cli.folder, "old")

    result = cli("prune", "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    assert sorted(d["run_id"] for d in json.loads(result.stdout)) == ["bad", "old"]
    assert "would remove 2 runs" in result.stderr
    assert sorted(listed(cli)) == ["bad", "new", "old"]
    assert rows(cli, "events", "old") > 0
    assert entry.exists()
    assert cli("prune", "--dry-run").stdout.startswith("would remove 2 runs")
    assert sorted(listed(cli)) == ["bad", "new", "old"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--older-than", "3x"], "'3x' is not a duration"),
        (["--older-than", "30"], "'30' is not a duration"),
        (["--older-than", "-1d"], "'-1d' is not a duration"),
        (["--status", "running"], "running: unfinished runs"),
        (["--status", "succeeded,waiting"], "waiting: unfinished runs"),
        (["--status", "pending"], "pending: unfinished runs"),
        (["--status", "done"], "done: unknown"),
    ],
)
def test_bad_arguments_exit_2_and_delete_nothing(
    three_runs: Cli, arguments: list[str], fragment: str
) -> None:
    cli = three_runs
    result = cli("prune", "--older-than", "0s", *arguments)

    assert result.returncode == 2
    assert_one_line_error(result.stderr, fragment)
    assert sorted(listed(cli)) == ["bad", "new", "old"]


@pytest.mark.parametrize("unit", ["45s", "90m", "12h", "30d", "2w"])
def test_every_unit_is_understood(three_runs: Cli, unit: str) -> None:
    result = three_runs("prune", "--dry-run", "--older-than", unit)
    assert result.returncode == 0, result.stderr
    assert "would remove 2 runs" in result.stdout


def test_live_and_parked_runs_are_never_pruned(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    parked = cli.start("run", "long.yaml", "--run-id", "parked")
    cli.wait_for_step(parked, "parked", "nap", "running")
    parked.send_signal(signal.SIGKILL)
    parked.communicate(timeout=10)
    assert cli("resume", "parked").returncode == 3  # its interrupted step waits for a person
    cli.write("endless.yaml", ENDLESS)
    live = cli.start("run", "endless.yaml", "--run-id", "live")
    cli.wait_for_step(live, "live", "nap", "running")
    age(cli, "parked", 400)
    age(cli, "live", 400)

    result = cli("prune", "--older-than", "0s", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert sorted(listed(cli)) == ["live", "parked"]
    assert live.poll() is None  # still driving its run
