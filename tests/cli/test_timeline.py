"""`show --timeline`: the Gantt chart of a run's steps, from real folded states and through a real
process: rows in workflow order with plan children indented, bars placed by their times."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from podium.cli.timeline import BAR, timeline_renderable
from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.core.state import RunState
from podium.spec.model import Workflow

from .conftest import Cli
from .test_planning_cli import _project

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WIDTH = 100


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _state() -> RunState:
    """`a` 0–4 s, then `b` and `c` in parallel 4–8 s and 4–6 s; `d` never starts."""
    doc = {
        "name": "w",
        "steps": [
            {"id": "a", "kind": "shell", "run": "true"},
            {"id": "b", "kind": "shell", "run": "true", "needs": ["a"]},
            {"id": "c", "kind": "shell", "run": "false", "needs": ["a"]},
            {"id": "d", "kind": "shell", "run": "true", "needs": ["b", "c"]},
        ],
    }
    state = new_state(
        ev.RunCreated(at=T0, run_id="r", workflow=doc, workspace="/tmp"),
        Workflow.model_validate(doc),
    )
    for event in (
        ev.StepStarted(at=_at(0), step_id="a", attempt=1),
        ev.StepSucceeded(at=_at(4), step_id="a", output=""),
        ev.StepStarted(at=_at(4), step_id="b", attempt=1),
        ev.StepStarted(at=_at(4), step_id="c", attempt=1),
        ev.StepFailed(at=_at(6), step_id="c", attempt=1, error="exit 1"),
        ev.StepSucceeded(at=_at(8), step_id="b", output=""),
    ):
        apply(state, event)
    return state


def _lines(state: RunState) -> list[str]:
    console = Console(width=WIDTH, record=True)
    console.print(timeline_renderable(state, now=_at(8)))
    return console.export_text().splitlines()


def _bar(line: str) -> tuple[int, int]:
    return line.index(BAR), line.rindex(BAR)


def test_bars_are_placed_by_their_times_and_parallel_steps_overlap() -> None:
    axis, a, b, c, d = _lines(_state())
    assert axis.split()[0].startswith("0s")
    assert axis.rstrip().endswith("8.0s")
    assert all(len(line) <= WIDTH for line in (a, b, c, d))
    (a0, a1), (b0, b1), (c0, c1) = _bar(a), _bar(b), _bar(c)
    assert a0 < a1 < b0 == c0  # b and c start when a ends, together
    assert c1 < b1  # c ended first
    assert b1 - b0 > (c1 - c0) * 1.5
    assert (a.split()[0], a.split()[-1]) == ("a", "4.0s")
    assert BAR not in d
    assert "(pending)" in d


def test_a_running_step_reaches_now_and_takes_its_status_colour() -> None:
    state = _state()
    apply(state, ev.StepStarted(at=_at(8), step_id="d", attempt=1))
    out = io.StringIO()
    console = Console(file=out, width=WIDTH, color_system="standard", force_terminal=True)
    console.print(timeline_renderable(state, now=_at(10)))
    rows = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    assert rows["d"].rstrip().endswith("2.0s")
    assert "\x1b[1;34m" + BAR in rows["d"]  # running: bold blue, as everywhere else
    assert "\x1b[1;31m" + BAR in rows["c"]  # failed: bold red


def test_show_timeline_indents_plan_children_under_their_plan(cli: Cli) -> None:
    options = _project(cli)
    planned = cli("plan", "Brief me", "--aggregator", "writer", "--run-id", "t1", *options)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = cli("show", "t1", "--timeline").stdout.splitlines()
    labels = [line[: len(line) - len(line.lstrip())] + line.split()[0] for line in lines]
    assert "  plan.durability" in labels
    assert labels.index("  plan.durability") == labels.index("plan") + 1
