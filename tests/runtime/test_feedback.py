"""`Engine.feedback` on a real SQLite file: a finished run takes it under a brief lease, a run
another engine drives gets it through its driver (once), and whatever does not fit records
nothing."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.core.feedback import feedback_signal_event
from podium.core.fold import replay
from podium.core.happenings import ControlSignal
from podium.errors import InvalidTransitionError, PodiumError, StepNotFoundError, UsageError
from podium.runtime.engine import Engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def shell(step_id: str, run: str, *needs: str) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "shell": "sh", "run": run, "needs": list(needs)}


def feedback_events(events: list[Any]) -> list[ev.StepFeedback]:
    return [e.event for e in events if isinstance(e.event, ev.StepFeedback)]


async def test_feedback_on_a_finished_run_is_folded_and_survives_a_reopen(tmp_path: Path) -> None:
    doc = {"name": "fb", "steps": [shell("a", "echo hi"), shell("b", "exit 3", "a")]}
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        state = await engine.run(doc)
        assert state.status == "failed"
        updated = state.updated_at
        assert await engine.feedback(state.run_id, "a", "up", "clear output")
        assert await engine.feedback(state.run_id, "b", "down")
        assert await engine.feedback(state.run_id, "a", "down", "")
        record = await engine.store.get_run(state.run_id)
        assert record.status == "failed"
        assert record.owner is None
        assert not await engine.store.pending_signals(state.run_id)
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        again = await engine.state(state.run_id)
        notes = again.feedback["a"]
        assert [(f.rating, f.comment) for f in notes] == [("up", "clear output"), ("down", None)]
        assert notes[0].who == getpass.getuser()
        assert [f.rating for f in again.feedback["b"]] == ["down"]
        assert again.updated_at == updated  # a remark on the run, not a change of it
        assert again.status == "failed"
        events = await engine.store.read(state.run_id)
        assert len(feedback_events(events)) == 3
        assert replay(e.event for e in events).feedback.keys() == {"a", "b"}


async def test_feedback_while_another_engine_drives_is_recorded_exactly_once(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    doc = {
        "name": "fb",
        "steps": [
            shell("a", "echo hi"),
            shell("b", "while [ ! -f gate ]; do sleep 0.05; done", "a"),
        ],
    }
    db = tmp_path / "podium.db"
    async with (
        await Engine.open(db, workspace=tmp_path) as driver,
        await Engine.open(db, workspace=tmp_path) as other,
    ):
        run_id = await driver.submit(doc)
        await _until_finished(driver, run_id, "a")
        assert driver.is_driving(run_id)
        epoch = (await driver.store.get_run(run_id)).epoch
        assert await other.feedback(run_id, "a", "up", "fast")  # the driver records it
        assert driver.is_driving(run_id)
        assert (await driver.store.get_run(run_id)).epoch == epoch  # no lease was taken
        gate.write_text("open")
        state = await driver.wait(run_id)
        assert state.status == "succeeded"
        events = await driver.store.read(run_id)
        recorded = feedback_events(events)
        assert [(f.step_id, f.rating, f.comment) for f in recorded] == [("a", "up", "fast")]
        assert not [e for e in events if isinstance(e.event, ev.SignalRefused)]
        assert not await driver.store.pending_signals(run_id)
        assert [f.rating for f in state.feedback["a"]] == ["up"]


async def test_feedback_from_the_engine_that_drives_the_run(tmp_path: Path) -> None:
    doc = {
        "name": "fb",
        "steps": [
            shell("a", "echo hi"),
            shell("b", "while [ ! -f gate ]; do sleep 0.05; done", "a"),
        ],
    }
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        run_id = await engine.submit(doc)
        await _until_finished(engine, run_id, "a")
        assert await engine.feedback(run_id, "a", "down", "slow")
        (tmp_path / "gate").write_text("open")
        state = await engine.wait(run_id)
        assert [f.comment for f in state.feedback["a"]] == ["slow"]
        assert len(feedback_events(await engine.store.read(run_id))) == 1


@pytest.mark.parametrize(
    ("step", "rating", "comment", "error", "says"),
    [
        ("nope", "up", None, StepNotFoundError, "has no step 'nope'"),
        ("aa", "up", None, StepNotFoundError, 'did you mean "a"?'),
        ("b", "up", None, InvalidTransitionError, "step b is pending"),
        ("a", "sideways", None, UsageError, "must be up or down"),
        ("a", "up", "x" * 2001, UsageError, "2,001 characters"),
    ],
)
async def test_refused_feedback_records_nothing(
    tmp_path: Path, step: str, rating: str, comment: str | None, error: type, says: str
) -> None:
    doc = {"name": "fb", "steps": [shell("a", "echo hi"), shell("b", "exit 0", "a")]}
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        unstarted = await engine.submit(doc, start=False)  # its step b has not finished
        finished = (await engine.run(doc)).run_id
        target = unstarted if step == "b" else finished
        before = await engine.store.read(target)
        with pytest.raises(error, match=says.replace("?", r"\?")):
            await engine.feedback(target, step, rating, comment)
        assert await engine.store.read(target) == before
        assert not await engine.store.pending_signals(target)


async def test_a_feedback_signal_left_behind_is_recorded_by_the_next_feedback(
    tmp_path: Path,
) -> None:
    """A process killed between posting its feedback and recording it leaves the signal in the
    inbox: the next feedback (or the next driver) records it too."""
    doc = {"name": "fb", "steps": [shell("a", "echo hi")]}
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        run_id = (await engine.run(doc)).run_id
        left = {"step_id": "a", "rating": "down", "comment": "first", "who": "ann"}
        await engine.store.post_signal(run_id, "feedback", left)
        assert await engine.feedback(run_id, "a", "up", "second")
        recorded = feedback_events(await engine.store.read(run_id))
        assert [(f.rating, f.comment, f.who) for f in recorded][:1] == [("down", "first", "ann")]
        assert [f.comment for f in recorded] == ["first", "second"]
        assert not await engine.store.pending_signals(run_id)


def test_a_feedback_signal_that_no_longer_fits_is_refused_when_read() -> None:
    doc = {"name": "fb", "steps": [shell("a", "echo hi")]}
    created = ev.RunCreated(at=NOW, run_id="run_x", workflow=doc, workspace=".")
    state = replay([created])
    signal = ControlSignal(7, "feedback", {"step_id": "a", "rating": "up", "who": "ann"})
    refused = feedback_signal_event(state, signal, NOW)
    assert isinstance(refused, ev.SignalRefused)
    assert refused.signal_id == 7
    assert "feedback is for a step that has finished" in refused.reason


async def test_feedback_on_an_unknown_run_is_refused(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as engine:
        with pytest.raises(PodiumError, match="no run with id 'run_gone'"):
            await engine.feedback("run_gone", "a", "up")


async def _until_finished(engine: Engine, run_id: str, step_id: str) -> None:
    async with asyncio.timeout(20):
        async for stored in engine.events(run_id, follow=True):
            if isinstance(stored.event, ev.StepSucceeded) and stored.event.step_id == step_id:
                return
