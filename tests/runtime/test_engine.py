"""The engine end to end on a real SQLite file: scheduling, retries, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.core.state import StepStatus
from podium.errors import InvalidTransitionError, RunExistsError, RunNotFoundError, SpecError
from podium.runtime.engine import Engine

from . import callables

CALL = "tests.runtime.callables"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as eng:
        yield eng


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for a condition the test cannot be told about (a process's death, a file a
    process writes), looking every 10 ms, for at most `seconds`."""
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.01)


def py(step_id: str, fn: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "python", "call": f"{CALL}:{fn}", "needs": list(needs), **fields}


def wf(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "t", "steps": list(steps), **fields}


async def test_outputs_flow_through_templates(engine: Engine) -> None:
    doc = wf(
        py("a", "echo", args={"value": {"n": 2, "who": "${{ inputs.who }}"}}),
        py("b", "echo", "a", args={"value": "hello ${{ steps.a.output.who }}"}),
        py("c", "echo", "a", args={"value": "${{ steps.a.output }}"}),
        inputs={"who": {"type": "string"}},
    )
    state = await engine.run(doc, {"who": "world"})
    assert state.status == "succeeded", {k: s.error for k, s in state.steps.items()}
    assert state.steps["b"].output == "hello world"
    assert state.steps["c"].output == {"n": 2, "who": "world"}


async def test_independent_branches_overlap(engine: Engine) -> None:
    doc = wf(
        py("slow", "echo", args={"value": 1, "delay": 0.4}),
        py("fast", "echo", args={"value": 2, "delay": 0.05}),
        py("after_fast", "echo", "fast", args={"value": 3, "delay": 0.05}),
    )
    state = await engine.run(doc)
    after = state.steps["after_fast"]
    slow = state.steps["slow"]
    assert after.finished_at is not None
    assert slow.finished_at is not None
    assert after.finished_at < slow.finished_at  # no barrier waiting for the slow sibling


async def test_retry_with_backoff_then_success(engine: Engine) -> None:
    callables.CALLS.clear()
    retry = {"max_attempts": 3, "initial_delay_seconds": 0.05, "jitter": 0}
    state = await engine.run(wf(py("f", "flaky", args={"name": "r1", "failures": 2}, retry=retry)))
    assert state.status == "succeeded"
    assert state.steps["f"].attempts == 3
    kinds = [e.event.kind for e in await engine.store.read(state.run_id)]
    assert kinds.count("step.retrying") == 2


async def test_retries_exhausted_fail_the_run(engine: Engine) -> None:
    callables.CALLS.clear()
    retry = {"max_attempts": 2, "initial_delay_seconds": 0.01}
    state = await engine.run(wf(py("f", "flaky", args={"name": "r2", "failures": 5}, retry=retry)))
    assert state.status == "failed"
    assert "r2 failure 2" in (state.steps["f"].error or "")


async def test_timeout_kills_a_shell_process_group(engine: Engine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    step = {
        "id": "s",
        "kind": "shell",
        "shell": "sh",
        "run": f"sleep 30 & echo $! > {pidfile}; wait",
        "timeout": 0.5,
        "sandbox": False,  # a host pid: the test checks the process-group kill itself
    }
    started = time.monotonic()
    state = await engine.run(wf(step))
    assert time.monotonic() - started < 10
    assert state.status == "failed"
    assert state.steps["s"].error_type == "timeout"
    await until(lambda: not _alive(int(pidfile.read_text())))


async def test_cancel_reaches_running_steps(engine: Engine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    run = f"echo $$ > {pidfile}; sleep 30"
    step = {"id": "s", "kind": "shell", "shell": "sh", "run": run, "sandbox": False}  # host pid
    run_id = await engine.submit(wf(step, py("after", "echo", "s")))
    await until(lambda: pidfile.exists() and bool(pidfile.read_text().strip()))
    assert await engine.cancel(run_id, "test")
    state = await engine.wait(run_id)
    assert state.status == "cancelled"
    assert state.steps["s"].status is StepStatus.CANCELLED
    assert state.steps["after"].status is StepStatus.CANCELLED
    await until(lambda: not _alive(int(pidfile.read_text())))
    with pytest.raises(InvalidTransitionError):
        await engine.cancel(run_id)


async def test_any_join_cancels_running_losers(engine: Engine) -> None:
    doc = wf(
        py("quick", "echo", args={"value": "q", "delay": 0.05}),
        py("slow", "sleeper", args={"seconds": 30}),
        py("first", "echo", "quick", "slow", join="any", args={"value": "done"}),
    )
    started = time.monotonic()
    state = await engine.run(doc)
    assert time.monotonic() - started < 5
    assert state.status == "succeeded"
    assert state.steps["slow"].status is StepStatus.CANCELLED
    assert state.steps["slow"].reason == "lost_race"


async def test_max_concurrency_is_respected(engine: Engine) -> None:
    steps = [py(f"s{i}", "echo", args={"value": i, "delay": 0.05}) for i in range(6)]
    state = await engine.run(wf(*steps, max_concurrency=2))
    spans = sorted((s.started_at, s.finished_at) for s in state.steps.values())
    for start, _ in spans:
        overlapping = sum(1 for s, f in spans if s <= start < f)  # type: ignore[operator]
        assert overlapping <= 2


async def test_huge_output_is_stored_truncated(engine: Engine) -> None:
    doc = wf(py("b", "big", args={"size": 3 * 1024 * 1024}), output_limit_bytes=4096)
    state = await engine.run(doc)
    step = state.steps["b"]
    assert step.truncated
    assert "truncated" in step.output
    assert len(step.output.encode()) < 5000


async def test_idempotency_key_is_stable(engine: Engine) -> None:
    state = await engine.run(wf(py("k", "keyed")))
    assert state.steps["k"].output == f"{state.run_id}:k"


async def test_events_are_contiguous_and_followable(engine: Engine) -> None:
    run_id = await engine.submit(wf(py("a", "echo", args={"delay": 0.1}), py("b", "echo", "a")))
    seen = [e async for e in engine.events(run_id, follow=True)]
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert seen[0].event.kind == "run.created"
    assert seen[-1].event.kind == "run.completed"


async def test_a_closed_engine_leaves_the_run_resumable(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    doc = wf(
        py("a", "echo", args={"value": 1}),
        py("b", "sleeper", "a", args={"seconds": 30}, idempotent=True),
        py("c", "echo", "b", args={"value": 3}),
    )
    async with await Engine.open(db, workspace=tmp_path) as first:
        run_id = await first.submit(doc)
        async for stored in first.events(run_id, follow=True):
            if isinstance(stored.event, ev.StepStarted) and stored.event.step_id == "b":
                break
    doc_fast = dict(doc)
    async with await Engine.open(db, workspace=tmp_path) as second:
        before = await second.state(run_id)
        assert before.steps["a"].status is StepStatus.SUCCEEDED
        assert before.steps["b"].status is StepStatus.RUNNING
        assert doc_fast  # the recorded workflow is what resumes, not the caller's copy
        await second.resume(run_id)
        async for stored in second.events(run_id, after_seq=before.seq, follow=True):
            if isinstance(stored.event, ev.StepStarted) and stored.event.step_id == "b":
                break  # b runs again (it is idempotent): cancel it there
        await second.cancel(run_id)
        state = await second.wait(run_id)
    kinds = [e.event.kind for e in await _read_all(db, run_id)]
    assert "run.resumed" in kinds
    assert kinds.count("step.succeeded") == 1  # a ran once, never again
    assert state.status == "cancelled"


async def _read_all(db: Path, run_id: str) -> list[Any]:
    from podium.store import open_store

    store = await open_store(db)
    try:
        return await store.read(run_id)
    finally:
        await store.close()


async def test_bad_input_is_refused_before_anything_is_stored(engine: Engine) -> None:
    with pytest.raises(SpecError):
        await engine.submit({"name": "x", "steps": [{"id": "a", "kind": "nope"}]})
    assert await engine.store.list_runs() == []
    run_id = await engine.submit(wf(py("a", "echo")), run_id="fixed-id")
    with pytest.raises(RunExistsError):
        await engine.submit(wf(py("a", "echo")), run_id="fixed-id")
    with pytest.raises(RunNotFoundError):
        await engine.state("nope")
    await engine.wait(run_id)


async def test_many_runs_share_the_engine(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "p.db", max_concurrent_runs=4) as eng:
        ids = [await eng.submit(wf(py("a", "echo", args={"value": i}))) for i in range(20)]
        states = await asyncio.gather(*(eng.wait(r) for r in ids))
    assert all(s.status == "succeeded" for s in states)
    assert sorted(s.steps["a"].output for s in states) == list(range(20))


def _alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by its parent) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except OSError:
        return False
    return text[text.rfind(")") + 2] != "Z"


async def test_reports_become_events_and_deltas_reach_subscribers(engine: Engine) -> None:
    run_id = await engine.submit(wf(py("m", "metered")), start=False)
    deltas = engine.bus.subscribe_deltas(run_id)
    await engine.resume(run_id)
    state = await engine.wait(run_id)
    assert state.status == "succeeded"
    assert state.tokens == 130
    assert state.steps["m"].tokens == 130
    assert abs(state.cost_usd - 0.02) < 1e-9
    kinds = [e.event.kind for e in await engine.store.read(run_id)]
    assert kinds.count("model.called") == 2
    assert deltas.get_nowait() == ("m", "partial ")
