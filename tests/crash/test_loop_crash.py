"""SIGKILL the real `podium run` in the middle of a loop's third iteration, then `podium
resume`: the iteration in flight runs again, the earlier ones never do, and the loop ends with
the right number of iterations. A body step that must not run twice is left interrupted
instead, and `podium retry` of it finishes the loop the same way.

The body's shell step appends `iteration N` to `ran.txt` and then sleeps (the kill lands during
the sleep of iteration 3); the checks read that file and the SQLite event log directly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .harness import EXIT_OK, EXIT_WAITING, Podium, integrity, kill_group, read_rows

WAIT_SECONDS = 30.0
ITERATIONS = 4


def _workflow(*, idempotent: bool = True) -> dict[str, object]:
    work = (
        "echo iteration ${{ loop.iteration }} >> ran.txt; "
        "if [ ${{ loop.iteration }} -eq 3 ] && [ ! -f killed.once ]; then touch killed.once; "
        "sleep 60; fi; echo ${{ loop.iteration }}"
    )
    return {
        "name": "loop-crash",
        "steps": [
            {
                "id": "refine",
                "kind": "loop",
                "max_iterations": ITERATIONS,
                "steps": [
                    {
                        "id": "work",
                        "kind": "shell",
                        "shell": "sh",
                        "run": work,
                        "idempotent": idempotent,
                    },
                    {"id": "note", "kind": "shell", "run": "true", "needs": ["work"]},
                ],
            },
            {
                "id": "after",
                "kind": "shell",
                "run": "echo ${{ steps.refine.iterations[-1].work.output }}",
                "needs": ["refine"],
            },
        ],
    }


def _kill_in_iteration_3(podium: Podium, root: Path, run_id: str, seed: int) -> None:
    """Start `podium run`, SIGKILL its process group while iteration 3's `work` sleeps."""
    proc = podium.spawn(["run", "workflow.json", "--run-id", run_id], root)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while not (root / "killed.once").exists():  # iteration 3's work is sleeping
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the loop never reached iteration 3"
            time.sleep(0.02)
        time.sleep(0.05 * seed)
    finally:
        kill_group(proc.pid)
        proc.communicate()
    assert proc.returncode == -9
    before = read_rows(podium.db, run_id)
    assert [r.fields.get("iteration") for r in before if r.kind == "loop.iterated"] == [2, 3]


def _check_finished(podium: Podium, tmp_path: Path, run_id: str) -> None:
    """Iterations 1, 2 and 4 ran once, the killed iteration 3 twice; the loop ended right."""
    lines = (tmp_path / "ran.txt").read_text().splitlines()
    assert lines.count("iteration 1") == 1
    assert lines.count("iteration 2") == 1
    assert lines.count("iteration 3") == 2  # in flight when killed: run again, once
    assert lines.count("iteration 4") == 1
    rows = read_rows(podium.db, run_id)
    iterated = [r.fields.get("iteration") for r in rows if r.kind == "loop.iterated"]
    assert iterated == [2, 3, 4]  # no iteration was begun twice
    [done] = [r for r in rows if r.kind == "step.succeeded" and r.fields["step_id"] == "refine"]
    assert done.fields["meta"] == {"iterations": ITERATIONS, "stopped": "max_iterations"}
    assert done.fields["output"]["work"] == "4"
    started = [r.fields["step_id"] for r in rows if r.kind == "step.started"]
    for n in (1, 2):
        assert started.count(f"refine.{n}.work") == 1
        assert started.count(f"refine.{n}.note") == 1
    assert started.count("refine.3.work") == 2
    assert rows[-1].kind == "run.completed"
    assert rows[-1].fields["outcome"] == "succeeded"
    assert integrity(podium.db) == "ok"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_loop_killed_mid_iteration_resumes_that_iteration(tmp_path: Path, seed: int) -> None:
    (tmp_path / "workflow.json").write_text(json.dumps(_workflow()))
    podium = Podium(tmp_path / "podium.db")
    run_id = f"loop-{seed}"
    _kill_in_iteration_3(podium, tmp_path, run_id, seed)

    result = podium.call(["resume", run_id], tmp_path)

    assert result.code == EXIT_OK, result.stderr
    _check_finished(podium, tmp_path, run_id)


def test_a_step_that_must_not_repeat_waits_for_a_person_within_its_iteration(
    tmp_path: Path,
) -> None:
    (tmp_path / "workflow.json").write_text(json.dumps(_workflow(idempotent=False)))
    podium = Podium(tmp_path / "podium.db")
    _kill_in_iteration_3(podium, tmp_path, "loop-once", 1)

    resumed = podium.call(["resume", "loop-once"], tmp_path)
    assert resumed.code == EXIT_WAITING, resumed.stderr  # interrupted: a person decides
    assert "refine.3.work" in resumed.stdout + resumed.stderr
    assert (tmp_path / "ran.txt").read_text().splitlines().count("iteration 3") == 1

    retried = podium.call(["retry", "loop-once", "refine.3.work"], tmp_path)

    assert retried.code == EXIT_OK, retried.stderr
    _check_finished(podium, tmp_path, "loop-once")
