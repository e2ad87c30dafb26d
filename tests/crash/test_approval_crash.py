"""SIGKILL the real `podium run` while three approvals wait in parallel branches (and another
branch is still running), then decide them from other processes in a random order: each
approved step runs exactly once, the rejected one never, nothing that ran before the approvals
runs again, and each approval is asked once. The same with an `any` join: the approval on the
branch that lost the race is withdrawn and its step never runs.

The side effects are files the shell steps append to (`<step>.ran`, one line per execution); the
checks read the SQLite file directly, trusting nothing the engine says about itself."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    Podium,
    Row,
    integrity,
    kill_group,
    read_rows,
)

WAIT_SECONDS = 30.0
# runs for a minute the first time (the kill lands while it runs), at once when run again
HANGS_ONCE = "if [ -f {name}.once ]; then echo again; else touch {name}.once; sleep 60; fi"


def _touch(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "kind": "shell", "shell": "sh", "run": f"echo ran >> {name}.ran", **extra}


def _hangs_once(name: str) -> dict[str, Any]:
    command = f"echo ran >> {name}.ran; " + HANGS_ONCE.format(name=name)
    return {"id": name, "kind": "shell", "shell": "sh", "run": command, "idempotent": True}


def _ran(root: Path, name: str) -> int:
    path = root / f"{name}.ran"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _kinds(rows: list[Row], kind: str) -> list[str]:
    return [r.fields.get("step_id", "") for r in rows if r.kind == kind]


def _park_and_kill(podium: Podium, root: Path, run_id: str, asked: int, running: str) -> None:
    """Start `podium run`, wait until `asked` approvals are recorded and `running` is in
    flight (its process has begun: `<running>.once` exists), then SIGKILL its whole process
    group (the driver and the step it runs)."""
    proc = podium.spawn(["run", "workflow.json", "--run-id", run_id], root)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while True:
            rows = read_rows(podium.db, run_id)
            in_flight = (root / f"{running}.once").exists()
            if len(_kinds(rows, "approval.requested")) == asked and in_flight:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never parked on its approvals"
            time.sleep(0.02)
    finally:
        kill_group(proc.pid)
        proc.communicate()
    assert proc.returncode == -9


def _decide(podium: Podium, root: Path, run_id: str, verb: str, step: str) -> int:
    args = [verb, run_id, step] + (["--reason", "not this one"] if verb == "reject" else [])
    result = podium.call(args, root)
    assert result.code != EXIT_BAD_INPUT, result.stderr
    return result.code


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_parked_approvals_survive_a_kill_and_run_once(tmp_path: Path, seed: int) -> None:
    branches = ["a", "b", "c"]
    workflow = {
        "name": "three-approvals",
        "on_failure": "collect",
        "steps": [
            _touch("build"),
            _hangs_once("slow"),
            *[_touch(n, needs=["build"], approval="required") for n in branches],
            *[_touch(f"{n}_after", needs=[n]) for n in branches],
        ],
    }
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    podium = Podium(tmp_path / "podium.db")
    run_id = f"approvals-{seed}"
    _park_and_kill(podium, tmp_path, run_id, asked=3, running="slow")

    rng = random.Random(seed)
    order = rng.sample(branches, len(branches))
    rejected = rng.choice(branches)
    codes = [
        _decide(podium, tmp_path, run_id, "reject" if n == rejected else "approve", n)
        for n in order
    ]

    assert codes[:-1] == [EXIT_WAITING, EXIT_WAITING]
    assert codes[-1] == EXIT_FAILED  # the rejected step failed the run
    rows = read_rows(podium.db, run_id)
    approved = [n for n in branches if n != rejected]
    assert Counter(_kinds(rows, "approval.requested")) == dict.fromkeys(branches, 1)
    assert sorted(_kinds(rows, "approval.granted")) == approved
    assert _kinds(rows, "approval.rejected") == [rejected]
    assert "signal.refused" not in [r.kind for r in rows]
    for name in approved:
        assert (_ran(tmp_path, name), _ran(tmp_path, f"{name}_after")) == (1, 1), name
    assert (_ran(tmp_path, rejected), _ran(tmp_path, f"{rejected}_after")) == (0, 0)
    assert _ran(tmp_path, "build") == 1  # ran before the approvals: never again
    assert _ran(tmp_path, "slow") == 2  # killed mid-flight, re-run (it is idempotent)
    assert integrity(podium.db) == "ok"


@pytest.mark.parametrize("seed", [1, 2])
def test_an_any_join_withdraws_the_losers_approval_after_a_kill(tmp_path: Path, seed: int) -> None:
    workflow = {
        "name": "any-approvals",
        "on_failure": "collect",
        "steps": [
            _hangs_once("gate"),
            _touch("x", approval="required"),
            _touch("pick", needs=["gate", "x"], join="any"),
            _touch("y", approval="required"),
            _touch("z", approval="required"),
        ],
    }
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    podium = Podium(tmp_path / "podium.db")
    run_id = f"any-{seed}"
    _park_and_kill(podium, tmp_path, run_id, asked=3, running="gate")

    rng = random.Random(seed)
    decisions = rng.sample([("approve", "y"), ("reject", "z")], 2)
    codes = [_decide(podium, tmp_path, run_id, verb, step) for verb, step in decisions]
    late = podium.call(["approve", run_id, "x"], tmp_path)  # it lost the race meanwhile

    assert codes == [EXIT_WAITING, EXIT_FAILED]
    assert late.code == EXIT_BAD_INPUT
    assert "step x is not awaiting approval" in late.stderr
    rows = read_rows(podium.db, run_id)
    assert _kinds(rows, "approval.withdrawn") == ["x"]
    assert Counter(_kinds(rows, "approval.requested")) == {"x": 1, "y": 1, "z": 1}
    cancelled = [r.fields for r in rows if r.kind == "step.cancelled"]
    assert cancelled == [{"step_id": "x", "reason": "lost_race"}]  # `at` is its own column
    assert [_ran(tmp_path, n) for n in ("x", "pick", "y", "z")] == [0, 1, 1, 0]
    assert _ran(tmp_path, "gate") == 2
    assert integrity(podium.db) == "ok"
    assert EXIT_OK not in codes


def test_a_question_survives_a_kill_and_its_answer_is_used_once(tmp_path: Path) -> None:
    workflow = {
        "name": "question",
        "steps": [
            _hangs_once("slow"),
            {"id": "ask", "kind": "human", "prompt": "Which?", "input": {"choice": ["l", "r"]}},
            {
                "id": "use",
                "kind": "shell",
                "shell": "sh",
                "needs": ["ask"],
                "run": "echo ${{ steps.ask.output }} >> use.ran",
            },
        ],
    }
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    podium = Podium(tmp_path / "podium.db")
    _park_and_kill(podium, tmp_path, "question", asked=1, running="slow")

    bad = podium.call(["answer", "question", "ask", "middle"], tmp_path)
    good = podium.call(["answer", "question", "ask", "r"], tmp_path)

    assert bad.code == EXIT_BAD_INPUT
    assert good.code == EXIT_OK, good.stdout + good.stderr
    rows = read_rows(podium.db, "question")
    assert _kinds(rows, "approval.requested") == ["ask"]
    assert [r.fields.get("value") for r in rows if r.kind == "approval.granted"] == ["r"]
    assert (tmp_path / "use.ran").read_text().splitlines() == ["r"]
    assert _ran(tmp_path, "slow") == 2
    assert integrity(podium.db) == "ok"
