"""The live table, rendered without a terminal: rows, and the tail of a running agent's text."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from rich.console import Console

from podium.cli.view import STREAM_CHARS, render_table
from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.spec.model import Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _state() -> object:
    doc = {
        "name": "w",
        "steps": [
            {"id": "ask", "kind": "agent", "agent": "a", "prompt": "p"},
            {"id": "done", "kind": "shell", "run": "true"},
        ],
    }
    wf = Workflow.model_validate(doc)
    created = ev.RunCreated(at=T0, run_id="r", workflow=doc, workspace="/tmp")
    state = new_state(created, wf)
    apply(state, ev.StepStarted(at=T0, step_id="ask", attempt=1))
    apply(state, ev.StepStarted(at=T0, step_id="done", attempt=1))
    apply(state, ev.StepSucceeded(at=T0, step_id="done", output="ok"))
    return state


def _text(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_running_agents_show_the_tail_of_their_stream() -> None:
    state = _state()
    long = "word " * 40 + "the latest words"
    text = _text(render_table(state, T0, {"ask": long, "done": "old text"}))  # type: ignore[arg-type]
    assert "output" in text
    assert "the latest words" in text
    assert "old text" not in text  # a finished step shows no stream
    line = next(row for row in text.splitlines() if row.startswith("ask"))
    assert len(line.split("│")[-1].strip()) <= STREAM_CHARS


def test_no_output_column_without_streams() -> None:
    text = _text(render_table(_state(), T0))  # type: ignore[arg-type]
    assert "output" not in text


def test_plain_lines_name_tool_calls_progress_and_refused_requests() -> None:
    from podium.cli.view import PlainLines
    from podium.store.base import StoredEvent

    state = _state()
    out = io.StringIO()
    console = Console(file=out, width=200)
    events: list[ev.Event] = [
        ev.ToolCalled(at=T0, step_id="ask", tool="read_file", latency_seconds=0.1),
        ev.ToolCalled(at=T0, step_id="ask", tool="http_get", ok=False, error="refused"),
        ev.StepProgress(at=T0, step_id="ask", message="half way", fraction=0.5),
        ev.SignalRefused(at=T0, signal_id=3, signal="retry", step_id="done", reason="it ran"),
    ]
    with PlainLines(console) as lines:
        lines.update([StoredEvent("r", 10 + i, e) for i, e in enumerate(events)], state)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "tool call" in text
    assert "read_file" in text
    assert "http_get failed: refused" in text
    assert "50% half way" in text
    assert "retry request refused: it ran" in text


def _sixty_steps() -> object:
    """60 independent steps: 57 succeeded, `s07` failed, `s30` interrupted, `s59` running."""
    doc = {
        "name": "w",
        "steps": [{"id": f"s{n:02d}", "kind": "shell", "run": "true"} for n in range(60)],
    }
    created = ev.RunCreated(at=T0, run_id="r", workflow=doc, workspace="/tmp")
    state = new_state(created, Workflow.model_validate(doc))
    for n in range(60):
        apply(state, ev.StepStarted(at=T0, step_id=f"s{n:02d}", attempt=1))
    for n in range(59):
        if n == 7:
            apply(state, ev.StepFailed(at=T0, step_id="s07", attempt=1, error="boom"))
        elif n != 30:
            apply(state, ev.StepSucceeded(at=T0, step_id=f"s{n:02d}", output="ok"))
    apply(state, ev.RunResumed(at=T0, interrupted=["s30"], requeued=["s59"]))
    apply(state, ev.StepStarted(at=T0, step_id="s59", attempt=1))
    return state


def test_a_failed_step_among_sixty_stays_pinned_on_top_and_the_rest_is_counted() -> None:
    state = _sixty_steps()
    text = _text(render_table(state, T0))  # type: ignore[arg-type]
    rows = [line.split()[0] for line in text.splitlines() if re.match(r"s\d\d ", line)]
    assert rows[:2] == ["s07", "s30"]  # failed and interrupted first, before anything else
    assert rows[2] == "s59"  # then what runs
    assert len(rows) == 40
    assert "(showing 40 of 60; 20 succeeded not shown)" in text


def test_the_live_header_says_why_the_run_is_being_cancelled() -> None:
    state = _state()
    apply(state, ev.RunCancelRequested(at=T0, reason="wrong inputs"))  # type: ignore[arg-type]
    assert "cancel reason: wrong inputs" in _text(render_table(state, T0))  # type: ignore[arg-type]
