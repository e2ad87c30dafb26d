"""The runtime's seams on real stores: the closed report channel, stale signals, parking,
injectable executors, the execution port, engine modes and a heartbeat that rides out faults."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.core.happenings import AttemptOutcome, Launch, Report
from podium.core.state import StepStatus
from podium.errors import StoreError
from podium.runtime.engine import Engine
from podium.runtime.execution import AttemptRequest, InProcessBackend
from podium.runtime.runner import LeasePolicy
from podium.spec.model import ShellStep, StepBase
from podium.steps import Executors, StepContext, StepResult, StepServices
from podium.steps.base import DETACHED
from podium.store.base import Lease
from podium.store.memory import MemoryEventStore

from .test_engine import py, wf

FAST = LeasePolicy(ttl_seconds=2.0, heartbeat_seconds=0.2, park_after_seconds=0.3)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path, lease=FAST) as eng:
        yield eng


async def kinds(engine: Engine, run_id: str) -> list[str]:
    return [stored.event.kind for stored in await engine.store.read(run_id)]


async def test_user_code_cannot_report_a_success(engine: Engine) -> None:
    state = await engine.run(wf(py("f", "forger"), py("after", "echo", "f")))
    assert state.status == "failed"
    forged = state.steps["f"]
    assert forged.status is StepStatus.FAILED
    assert "cannot report 'step.succeeded'" in (forged.error or "")
    assert state.steps["after"].started_at is None  # its dependent never started
    assert "step.succeeded" not in await kinds(engine, state.run_id)


async def test_a_stale_signal_is_refused_and_never_breaks_a_take_over(engine: Engine) -> None:
    run_id = await engine.submit(wf(py("a", "echo", args={"value": 1})), start=False)
    await engine.store.post_signal(run_id, "retry", {"step_id": "ghost"})
    await engine.store.post_signal(run_id, "skip", {"step_id": "a"})
    for _ in range(2):  # resuming again must not raise either
        await engine.resume(run_id)
        state = await engine.wait(run_id)
    assert state.steps["a"].status is StepStatus.SKIPPED  # the signal that fitted applied
    assert state.status == "succeeded"
    events = [s.event for s in await engine.store.read(run_id)]
    refused = [e for e in events if isinstance(e, ev.SignalRefused)]
    assert [e.signal for e in refused] == ["retry"]
    assert "no step 'ghost'" in refused[0].reason
    assert await engine.store.pending_signals(run_id) == []


async def test_a_run_waiting_on_a_backoff_is_parked_not_held(engine: Engine) -> None:
    retry = {"max_attempts": 2, "initial_delay_seconds": 1.0, "jitter": False}
    run_id = await engine.submit(
        wf(py("flaky", "flaky", args={"name": "parked", "failures": 1}, retry=retry))
    )
    waiting = asyncio.ensure_future(engine.wait(run_id))
    record = await _until(engine, run_id, lambda r: r.status == "waiting" and r.owner is None)
    assert record.wake_at is not None  # parked until then, holding no lease
    assert not engine.is_driving(run_id)  # and no task
    state = await waiting
    assert state.status == "succeeded"
    assert state.steps["flaky"].attempts == 2
    assert (await engine.store.get_run(run_id)).wake_at is None


async def test_executors_are_injectable(tmp_path: Path) -> None:
    class Echo:
        async def execute(
            self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
        ) -> StepResult:
            services.report("step.progress", {"message": "half way", "fraction": 0.5})
            return StepResult(f"fake {ctx.step_id}")

    executors = Executors({"shell": Echo()})
    async with await Engine.open(tmp_path / "p.db", executors=executors) as engine:
        state = await engine.run(wf({"id": "s", "kind": "shell", "run": "false"}))
        assert state.steps["s"].output == "fake s"
        assert "step.progress" in await kinds(engine, state.run_id)


async def test_an_attempt_request_is_plain_picklable_data(tmp_path: Path) -> None:
    launch = Launch("s", 1, 0, "run:s", ShellStep(id="s", run="echo hi"), {"up": [1]}, {})
    request = AttemptRequest.of(
        launch, run_id="run", epoch=3, workspace=tmp_path, output_limit_bytes=1024
    )
    assert pickle.loads(pickle.dumps(request)) == request

    class Sink:
        def __init__(self) -> None:
            self.reports: list[Report] = []

        def report(self, report: Report) -> None:
            self.reports.append(report)

        def delta(self, text: str) -> None:
            return None

    sink = Sink()
    outcome = await InProcessBackend(Executors()).execute(request, sink)
    assert outcome == AttemptOutcome("s", 1, output="hi", meta=outcome.meta)
    assert pickle.loads(pickle.dumps(outcome)) == outcome  # what a remote backend sends back
    report = Report("s", "step.progress", {"message": "m"})
    assert pickle.loads(pickle.dumps(report)) == report


async def test_a_control_engine_posts_and_a_worker_drives(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with await Engine.open(db, mode="control", workspace=tmp_path) as control:
        run_id = await control.submit(wf(py("a", "echo", args={"value": 7})))
        assert not control.is_driving(run_id)
        assert (await control.store.get_run(run_id)).status == "pending"
        async with await Engine.open(db, mode="worker", workspace=tmp_path, lease=FAST) as worker:
            state = await asyncio.wait_for(control.wait(run_id), 20)
            assert state.steps["a"].output == 7
            assert not control.is_driving(run_id)
            assert worker is not None


class _FlakyRenewals(MemoryEventStore):
    """A memory store whose lease renewals fail a few times, as a locked file or a network
    blip would make them."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("the store is briefly unavailable")
        return await super().renew_lease(lease, ttl_seconds=ttl_seconds)


async def test_the_heartbeat_rides_out_transient_store_errors(tmp_path: Path) -> None:
    store = _FlakyRenewals(failures=3)
    policy = LeasePolicy(ttl_seconds=1.5, heartbeat_seconds=0.1)
    async with Engine(store, workspace=tmp_path, lease=policy) as engine:
        state = await engine.run(wf(py("slow", "echo", args={"value": 1, "delay": 0.6})))
    assert state.status == "succeeded"
    assert store.failures == 0


async def _until(engine: Engine, run_id: str, check: Any) -> Any:
    async with asyncio.timeout(10):
        while True:
            record = await engine.store.get_run(run_id)
            if check(record):
                return record
            await engine.store.wait_for_events(
                run_id, after_seq=record.last_seq, timeout_seconds=0.05
            )


class _ClaimRace(MemoryEventStore):
    """A memory store that, the moment a worker's claim has taken leases and before the worker
    starts their drivers, lets `competitor` run: as an API request resuming the same run would
    if it arrived then."""

    def __init__(self) -> None:
        super().__init__()
        self.competitor: Any = None

    async def claim(self, owner: str, **options: Any) -> list[Any]:
        claims = await super().claim(owner, **options)
        competitor, self.competitor = self.competitor, None
        if claims and competitor is not None:
            await competitor()
        return claims


async def test_a_run_claimed_and_resumed_at_once_gets_one_driver(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _ClaimRace()
    async with Engine(store, mode="worker", workspace=tmp_path, lease=FAST) as engine:
        flaky = py("a", "flaky", args={"name": f"race-{tmp_path.name}", "failures": 1})
        run_id = await engine.submit(wf(flaky, py("b", "echo", "a", args={"delay": 0.5})))
        assert (await asyncio.wait_for(engine.wait(run_id), 10)).status == "failed"

        async def resume_and_get_going() -> None:  # the claim goes on once b is under way
            await engine.resume(run_id)
            async with asyncio.timeout(10):
                while (await engine.state(run_id)).steps["b"].status != StepStatus.RUNNING:
                    await asyncio.sleep(0.01)

        store.competitor = resume_and_get_going
        await store.post_signal(run_id, "retry", {"step_id": "a"})  # as a control process does
        record = await _until(engine, run_id, lambda r: r.status == "succeeded")
        for _ in range(20):  # whatever driver the claim would start has started by now
            await asyncio.sleep(0.05)
        assert store.competitor is None
        kinds = [stored.event.kind for stored in await store.read(run_id)]
        assert kinds.count("step.started") == 3
        assert record.last_seq == len(kinds)
        assert not engine.is_driving(run_id)
    stops = [r for r in caplog.records if r.name == "podium.engine"]  # a driver that lost
    assert not stops, caplog.text  # its lease to the other, or never started
