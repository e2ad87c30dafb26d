"""SIGKILL the real `podium run` while three shell steps a planner generated wait for approval
under the default policy (and a written step is still running), then decide them from other
processes: each approved step runs exactly once, the rejected one never, the plan is not asked
for again, and the policy's reason is in each request.

The side effects are files the shell steps append to; the checks read the SQLite file directly."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from .harness import EXIT_FAILED, EXIT_WAITING, Podium, integrity, kill_group, read_rows
from .test_approval_crash import WAIT_SECONDS, _decide, _hangs_once, _kinds, _ran

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLANNED = ["a", "b", "c"]
SCRIPT = {
    "agents": {
        "planner": [
            {
                "json": {
                    "steps": [
                        {"id": n, "kind": "shell", "run": f"sh -c 'echo ran >> {n}.ran'"}
                        for n in PLANNED
                    ]
                }
            }
        ]
    }
}


def _park_and_kill(podium: Podium, root: Path, args: list[str], asked: int) -> None:
    """`podium run` until `asked` approvals are recorded and `slow` is in flight, then SIGKILL
    its process group (see test_approval_crash)."""
    proc = podium.spawn(["run", "workflow.json", "--run-id", *args], root)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while (
            len(_kinds(read_rows(podium.db, args[0]), "approval.requested")) < asked
            or not (root / "slow.once").exists()
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never parked on its approvals"
            time.sleep(0.02)
    finally:
        kill_group(proc.pid)
        proc.communicate()
    assert proc.returncode == -9


@pytest.mark.parametrize("seed", [1, 2])
def test_planned_steps_held_by_the_policy_survive_a_kill_and_run_once(
    tmp_path: Path, seed: int
) -> None:
    shutil.copytree(EXAMPLES / "agents", tmp_path / "agents")
    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    workflow = {
        "name": "planned",
        "on_failure": "collect",
        "steps": [
            _hangs_once("slow"),
            {
                "id": "plan",
                "kind": "plan",
                "goal": "Touch three files.",
                "kinds": ["agent", "shell"],
                "max_replans": 0,
            },
        ],
    }
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    podium = Podium(tmp_path / "podium.db")
    run_id = f"policy-{seed}"
    options = ["--agents", str(tmp_path), "--model", f"scripted:{tmp_path / 'script.json'}"]
    _park_and_kill(podium, tmp_path, [run_id, *options], asked=3)

    rng = random.Random(seed)
    approved = rng.sample(PLANNED, 2)
    rejected = next(n for n in PLANNED if n not in approved)
    codes = [_decide(podium, tmp_path, run_id, "approve", f"plan.{n}") for n in approved]
    codes.append(_decide(podium, tmp_path, run_id, "reject", f"plan.{rejected}"))

    assert codes == [EXIT_WAITING, EXIT_WAITING, EXIT_FAILED]  # the rejection fails the plan
    rows = read_rows(podium.db, run_id)
    asked = [r.fields for r in rows if r.kind == "approval.requested"]
    assert Counter(a["step_id"] for a in asked) == {f"plan.{n}": 1 for n in PLANNED}
    assert {a["reason"] for a in asked} == {"policy: planned_shell"}
    assert [r.kind for r in rows].count("plan.generated") == 1  # never planned again
    assert sorted(_kinds(rows, "approval.granted")) == sorted(f"plan.{n}" for n in approved)
    for name in approved:
        assert _ran(tmp_path, name) == 1, name
    assert _ran(tmp_path, rejected) == 0
    assert _ran(tmp_path, "slow") == 2  # killed mid-flight, re-run (it is idempotent)
    assert integrity(podium.db) == "ok"
