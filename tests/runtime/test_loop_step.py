"""Loop steps through the engine and a real SQLite store: shell bodies that count their runs in
a file, iterations addressable from outside, the `loop_iterations` budget, retrying a failed
loop (it starts over at iteration 1), the show documents, and forking a run with a loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus
from podium.errors import UsageError
from podium.runtime.engine import Engine
from podium.stepviews import step_detail_document
from podium.views import show_document

# appends `<id> <iteration>` to runs.log, prints the iteration times ten
WORK = "echo work ${{ loop.iteration }} >> runs.log && echo ${{ loop.iteration }}0"


def body(*, fail_on: int | None = None) -> list[dict[str, Any]]:
    """`work` (fails once in iteration `fail_on` while fail.once is absent), then `check`,
    which says done in iteration 3."""
    run = WORK
    if fail_on is not None:
        run = (
            f"if [ ${{{{ loop.iteration }}}} -eq {fail_on} ] && [ ! -f fail.once ]; "
            f"then touch fail.once; exit 1; fi; {WORK}"
        )
    check = "if [ ${{ loop.iteration }} -ge 3 ]; then echo true; else echo false; fi"
    return [
        {"id": "work", "kind": "shell", "shell": "sh", "run": run},
        {
            "id": "check",
            "kind": "shell",
            "shell": "sh",
            "run": check,
            "needs": ["work"],
            "output": "json",
        },
    ]


def flow(*, budget: dict[str, Any] | None = None, **loop: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "loops",
        "steps": [
            {
                "id": "refine",
                "kind": "loop",
                "max_iterations": 5,
                "until": "${{ steps.check.output }}",
                "steps": body(),
                **loop,
            },
            {
                "id": "after",
                "kind": "shell",
                "shell": "sh",
                "needs": ["refine"],
                "run": "echo after >> runs.log && echo "
                "${{ steps.refine.iterations[0].work.output }}-${{ steps.refine.output.work }}",
            },
        ],
    }
    if budget is not None:
        doc["budget"] = budget
    return doc


def runs(root: Path) -> list[str]:
    path = root / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as opened:
        yield opened


async def test_a_loop_runs_until_its_condition_and_its_iterations_are_read_after(
    engine: Engine, tmp_path: Path
) -> None:
    state = await engine.run(flow())
    assert state.status == "succeeded", state.completed_error
    assert runs(tmp_path) == ["work 1", "work 2", "work 3", "after"]
    loop = state.steps["refine"]
    assert loop.output == {"work": "30", "check": True}
    assert loop.meta == {"iterations": 3, "stopped": "until"}
    assert state.steps["after"].output == "10-30"
    kinds = [s.event.kind for s in await engine.store.read(state.run_id)]
    assert kinds.count("loop.iterated") == 2

    doc = show_document(state, None)
    assert doc["loops"] == {
        "refine": {
            "iterations": [[f"refine.{n}.work", f"refine.{n}.check"] for n in (1, 2, 3)],
            "stopped": "until",
        }
    }
    detail = step_detail_document(state, "refine.2.work", await engine.store.read(state.run_id))
    assert (detail["parent"], detail["iteration"], detail["output"]) == ("refine", 2, "20")
    assert detail["input"]["run"].startswith("echo work 2 >> runs.log")


async def test_max_iterations_bounds_a_loop_whose_condition_never_holds(
    engine: Engine, tmp_path: Path
) -> None:
    state = await engine.run(flow(max_iterations=2))
    assert state.status == "succeeded"
    assert state.steps["refine"].meta == {"iterations": 2, "stopped": "max_iterations"}
    assert runs(tmp_path) == ["work 1", "work 2", "after"]


async def test_the_loop_iterations_budget_stops_the_run(engine: Engine, tmp_path: Path) -> None:
    state = await engine.run(flow(budget={"loop_iterations": 2}))
    assert state.status == "failed"
    assert state.completed_error == "budget loop_iterations exceeded: 3 of 2"
    assert runs(tmp_path) == ["work 1", "work 2"]
    assert state.steps["refine"].status is StepStatus.CANCELLED
    kinds = [s.event.kind for s in await engine.store.read(state.run_id)]
    assert kinds.count("budget.exceeded") == 1


async def test_a_failed_iteration_fails_the_loop_and_a_retry_starts_over(
    engine: Engine, tmp_path: Path
) -> None:
    state = await engine.run(flow(steps=body(fail_on=2)))
    assert state.status == "failed"
    loop = state.steps["refine"]
    assert loop.error is not None
    assert loop.error.startswith("iteration 2: step work failed")
    assert state.steps["refine.2.check"].status is StepStatus.SKIPPED
    assert state.steps["after"].status in (StepStatus.CANCELLED, StepStatus.SKIPPED)

    assert await engine.retry(state.run_id, "refine")
    state = await engine.wait(state.run_id)
    assert state.status == "succeeded", state.completed_error
    assert runs(tmp_path) == ["work 1", "work 1", "work 2", "work 3", "after"]
    assert state.steps["refine"].generation == 1
    assert state.steps["refine.1.work"].generation == 1  # a new generation's child
    assert state.steps["refine"].meta == {"iterations": 3, "stopped": "until"}
    again = await engine.state(state.run_id)  # the log replays to the same iterations
    assert again.loops["refine"].iterations == state.loops["refine"].iterations


async def test_a_fork_after_a_loop_takes_its_iterations_over(
    engine: Engine, tmp_path: Path
) -> None:
    parent = await engine.run(flow())
    (tmp_path / "runs.log").unlink()
    fork_id = await engine.fork(parent.run_id, "after")
    state = await engine.wait(fork_id)
    assert state.status == "succeeded", state.completed_error
    assert runs(tmp_path) == ["after"]  # no iteration ran again
    assert state.steps["after"].output == "10-30"  # read the taken-over iterations
    assert state.loops["refine"].iterations == parent.loops["refine"].iterations
    assert state.steps["refine.2.work"].output == "20"
    assert state.loop_iterations == 0  # taken over, not started here

    with pytest.raises(UsageError, match="in an iteration of loop 'refine'"):
        await engine.fork(parent.run_id, "refine.2.work")

    again = await engine.wait(await engine.fork(parent.run_id, "refine"))
    assert again.status == "succeeded"
    assert runs(tmp_path) == ["after", "work 1", "work 2", "work 3", "after"]


async def test_a_body_step_asks_for_approval_in_the_iteration_its_condition_names(
    engine: Engine, tmp_path: Path
) -> None:
    steps = body()
    steps[0] = {**steps[0], "approval": "${{ loop.iteration == 2 }}"}
    state = await engine.run(flow(steps=steps))
    assert state.status == "waiting"
    [waiting] = await engine.approvals(state.run_id)
    assert waiting.step_id == "refine.2.work"
    assert waiting.input["run"].startswith("echo work 2")  # rendered for its iteration
    assert runs(tmp_path) == ["work 1"]
    assert await engine.approve(state.run_id, "refine.2.work")
    state = await engine.wait(state.run_id)
    assert state.status == "succeeded", state.completed_error
    assert runs(tmp_path) == ["work 1", "work 2", "work 3", "after"]
