"""`podium feedback RUN STEP --up|--down [--comment TEXT]` as real processes on a SQLite file:
recorded on a finished run, shown by `show`, `show RUN STEP` and `events`, and refused (exit 2,
one line, nothing recorded) when it does not fit."""

from __future__ import annotations

import asyncio
import getpass
import json
import sqlite3
from pathlib import Path

import pytest

from podium.runtime.engine import Engine

from .conftest import Cli

FLOW = """\
name: rated
steps:
  - id: build
    kind: shell
    shell: sh
    run: echo built
  - id: test
    kind: shell
    shell: sh
    run: exit 1
    needs: [build]
  - id: ship
    kind: shell
    shell: sh
    run: echo shipped
    needs: [test]
"""

PENDING = """\
name: unstarted
steps:
  - id: wait
    kind: shell
    shell: sh
    run: "true"
"""


def _finished_run(cli: Cli) -> str:
    (cli.folder / "flow.yaml").write_text(FLOW)
    result = cli("run", "flow.yaml", "--json")
    assert result.returncode == 1, result.stderr
    return str(json.loads(result.stdout)["run_id"])


def _events(cli: Cli, run_id: str) -> list[dict[str, object]]:
    result = cli("events", run_id, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_up_with_a_comment_then_show_and_show_step(cli: Cli) -> None:
    run_id = _finished_run(cli)
    first = cli("feedback", run_id, "build", "--up", "--comment", "clean and quick")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"feedback up on step build of run {run_id} recorded (up 1)"
    assert cli("feedback", run_id[:10], "build", "--down").returncode == 0
    assert cli("feedback", "@latest", "test", "--down", "--comment", "flaky").returncode == 0

    show = cli("show", run_id)
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert "feedback" in lines
    assert any(line.split() == ["build", "up", "1,", "down", "1"] for line in lines)
    assert any(line.split() == ["test", "down", "1"] for line in lines)
    assert "updated" in show.stdout

    step = cli("show", run_id, "build")
    assert step.returncode == 0, step.stderr
    tail = step.stdout.split("\nfeedback\n", 1)[1].splitlines()
    who = getpass.getuser()
    assert tail[0].endswith(f"  up by {who}")
    assert tail[1].strip() == "clean and quick"
    assert tail[2].endswith(f"  down by {who}")

    shown = json.loads(cli("show", run_id, "--json").stdout)
    assert shown["feedback"] == {"build": {"up": 1, "down": 1}, "test": {"up": 0, "down": 1}}
    detail = json.loads(cli("show", run_id, "build", "--json").stdout)
    assert [(f["rating"], f["comment"], f["who"]) for f in detail["feedback"]] == [
        ("up", "clean and quick", who),
        ("down", None, who),
    ]
    assert all(f["at"] for f in detail["feedback"])

    events = cli("events", run_id)
    assert f'up by {who}: "clean and quick"' in events.stdout
    kinds = [e["kind"] for e in _events(cli, run_id)]
    assert kinds.count("step.feedback") == 3


def test_json_prints_the_steps_feedback(cli: Cli) -> None:
    run_id = _finished_run(cli)
    result = cli("feedback", run_id, "ship", "--down", "--comment", "never ran", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["run_id"] == run_id
    assert doc["step_id"] == "ship"
    assert doc["rating"] == "down"
    assert doc["recorded"] is True
    assert [(f["rating"], f["comment"]) for f in doc["feedback"]] == [("down", "never ran")]
    assert "recorded (down 1)" in result.stderr  # the human line keeps off the JSON


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run_nope", "build", "--up"), "no run with id 'run_nope'"),
        (("{run}", "buidl", "--up"), 'did you mean "build"?'),
        (("{run}", "build"), "neither --up nor --down"),
        (("{run}", "build", "--up", "--down"), "both --up and --down"),
        (("{run}", "build", "--up", "--comment", "x" * 2001), "2,001 characters"),
        (("{pending}", "wait", "--up"), "step wait is ready; feedback is for a step that has"),
    ],
)
def test_bad_feedback_exits_2_and_records_nothing(
    cli: Cli, args: tuple[str, ...], says: str
) -> None:
    run_id = _finished_run(cli)
    (cli.folder / "pending.yaml").write_text(PENDING)
    pending = _control_run(cli)
    before = {rid: _events(cli, rid) for rid in (run_id, pending)}
    argv = [a.replace("{run}", run_id).replace("{pending}", pending) for a in args]
    result = cli("feedback", *argv)
    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {rid: _events(cli, rid) for rid in before} == before
    assert not _pending_signals(cli.db)


def test_feedback_on_a_pruned_run_exits_2(cli: Cli) -> None:
    run_id = _finished_run(cli)
    assert cli("prune", "--older-than", "0s").returncode == 0
    result = cli("feedback", run_id, "build", "--up")
    assert result.returncode == 2
    assert f"no run with id '{run_id}'" in result.stderr


def _control_run(cli: Cli) -> str:
    """A run recorded but never started (what a control engine submits for a worker)."""

    async def submit() -> str:
        async with await Engine.open(cli.db, mode="control", workspace=cli.folder) as engine:
            return await engine.submit(cli.folder / "pending.yaml")

    return asyncio.run(submit())


def _pending_signals(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, kind FROM signals WHERE consumed_at IS NULL").fetchall()
