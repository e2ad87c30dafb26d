"""The engine: submit, resume, cancel, retry and skip runs; wait for them; stream their events.

async with await Engine.open("sqlite:///.podium/podium.db") as engine:
    run_id = await engine.submit("examples/quickstart.yaml", {"name": "world"})
    state = await engine.wait(run_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from podium import telemetry
from podium.clock import Clock, SystemClock
from podium.core import events as ev
from podium.core import plans
from podium.core.breaker import BreakerPolicy
from podium.core.control import awaiting_plan, cancel_event, retry_event, skip_event
from podium.core.fold import new_state, replay
from podium.core.state import RunState
from podium.errors import LeaseHeldError, Problem, SpecError, UsageError
from podium.ids import new_run_id
from podium.runtime.bus import EventBus
from podium.runtime.runner import LEASE_TTL_SECONDS, RunDriver
from podium.runtime.services import AgentServices
from podium.spec.load import WorkflowSource, load_workflow
from podium.spec.model import PlanStep
from podium.spec.plan import check_plan
from podium.spec.validate import (
    coerce_inputs,
)
from podium.store import default_store_path, open_store
from podium.store.base import TERMINAL_STATUSES, EventStore, Lease, StoredEvent, current_owner

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FOLLOW_POLL_SECONDS = 0.2


class Engine:
    """Runs workflows durably against one event store."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_concurrent_runs: int = 64,
        clock: Clock | None = None,
        workspace: str | os.PathLike[str] | None = None,
        agents_dir: str | os.PathLike[str] | None = None,
        default_model: str | None = None,
        mcp_servers: Mapping[str, Mapping[str, Any]] | None = None,
        services: AgentServices | None = None,
        breaker: BreakerPolicy | Mapping[str, Any] | None = None,
    ) -> None:
        """`agents_dir` is the project folder whose `agents/` holds the catalog (default: the
        workspace, else the current directory; `~/.config/podium/agents` is read too);
        `default_model` applies to agents that name none (else `PODIUM_MODEL`); `breaker` is
        the circuit-breaker policy for every agent and model (default `BreakerPolicy()`)."""
        if max_concurrent_runs < 1:
            raise UsageError("max_concurrent_runs must be at least 1")
        self.store = store
        self.bus = EventBus()
        self._clock = clock or SystemClock()
        self._workspace = Path(workspace) if workspace is not None else None
        self._run_slots = asyncio.Semaphore(max_concurrent_runs)
        self._owner = current_owner()
        self._drivers: dict[str, RunDriver] = {}
        self._tasks: dict[str, asyncio.Task[RunState]] = {}
        self._explicit_agents = agents_dir is not None
        project = Path(agents_dir) if agents_dir is not None else (self._workspace or Path.cwd())
        self.services = services or AgentServices(
            project_dir=project,
            default_model=default_model,
            mcp_servers=mcp_servers,
            breaker=breaker,
            clock=self._clock,
        )

    @classmethod
    async def open(cls, url: str | os.PathLike[str] | None = None, **options: Any) -> Engine:
        """Open the store at `url` (see `podium.store.open_store`); default `PODIUM_DB` or
        `.podium/podium.db`."""
        store = await open_store(url if url is not None else default_store_path())
        return cls(store, **options)

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop driving (in-flight steps stay in flight for a later resume) and close the store."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.services.aclose()
        await self.store.close()

    # ------------------------------------------------------------------------ runs

    async def submit(
        self,
        workflow: WorkflowSource,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
        start: bool = True,
    ) -> str:
        """Validate, record `run.created`, and (unless `start=False`) start driving the run."""
        wf = load_workflow(workflow, agents=_LazyAgentNames(self.services))
        values = coerce_inputs(wf, dict(inputs or {}))
        rid = _check_run_id(run_id) if run_id is not None else new_run_id()
        where = Path(workspace) if workspace is not None else (self._workspace or Path.cwd())
        created = ev.RunCreated(
            at=self._clock.now(),
            run_id=rid,
            workflow=wf.model_dump(mode="json", exclude_unset=True),
            inputs=values,
            workspace=str(where.resolve()),
            agents_dir=str(self.services.project_dir.resolve()),
            default_model=self.services.default_model,
        )
        await self.store.create_run(created, workflow_name=wf.name)
        if start:
            lease = await self.store.acquire_lease(rid, self._owner, ttl_seconds=LEASE_TTL_SECONDS)
            self._spawn(new_state(created, wf), lease, resumed=False)
        return rid

    async def run(
        self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> RunState:
        """Submit and wait."""
        return await self.wait(await self.submit(workflow, inputs, **options))

    async def resume(self, run_id: str) -> RunState:
        """Take over a run that nobody drives and start driving it. LeaseHeldError if somebody
        does. Returns the state as replayed (a finished run is returned as it is)."""
        state = await self.state(run_id)
        if run_id in self._tasks:
            return state
        if state.outcome is not None and not await self.store.pending_signals(run_id):
            return state  # finished, and no retry/skip waits to reopen it
        lease = await self.store.acquire_lease(run_id, self._owner, ttl_seconds=LEASE_TTL_SECONDS)
        state = replay(stored.event for stored in await self.store.read(run_id))
        self._adopt_run_defaults(state)
        self._spawn(state, lease, resumed=True)
        return state

    async def wait(self, run_id: str) -> RunState:
        """Wait until the run completes or parks (waiting for a person); return its state."""
        task = self._tasks.get(run_id)
        if task is not None:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():  # we were cancelled, not the run's driver
                    raise
        else:
            while (await self.store.get_run(run_id)).status not in (*TERMINAL_STATUSES, "waiting"):
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
        return await self.state(run_id)

    async def state(self, run_id: str) -> RunState:
        """The run's state, replayed from its events."""
        driver = self._drivers.get(run_id)
        if driver is not None:
            return driver.state
        return replay(stored.event for stored in await self.store.read(run_id))

    def is_driving(self, run_id: str) -> bool:
        return run_id in self._tasks

    # --------------------------------------------------------------------- control

    async def cancel(self, run_id: str, reason: str = "") -> bool:
        """Request cancellation. Returns True if this engine now drives the run to its end."""
        cancel_event(await self.state(run_id), self._clock.now(), reason)
        await self.store.post_signal(run_id, "cancel", {"reason": reason})
        return await self._deliver(run_id)

    async def retry(self, run_id: str, step_id: str) -> bool:
        """Run a failed, interrupted, cancelled or skipped step again (and what waits for it)."""
        retry_event(await self.state(run_id), step_id, self._clock.now())
        await self.store.post_signal(run_id, "retry", {"step_id": step_id})
        return await self._deliver(run_id)

    async def skip(self, run_id: str, step_id: str) -> bool:
        """Mark a waiting, interrupted or failed step skipped and carry on without it."""
        skip_event(await self.state(run_id), step_id, self._clock.now())
        await self.store.post_signal(run_id, "skip", {"step_id": step_id})
        return await self._deliver(run_id)

    async def approve(
        self, run_id: str, step_id: str | None = None, *, plan: Mapping[str, Any] | None = None
    ) -> bool:
        """Approve the plan awaiting confirmation, or an edited `plan` (checked first: a bad
        edit is refused with every problem, nothing is recorded)."""
        state = await self.state(run_id)
        sid = awaiting_plan(state, step_id)
        self._adopt_run_defaults(state)
        edited = dict(plan) if plan is not None else None
        if edited is not None:
            self._check_edited_plan(state, sid, edited)
        await self.store.post_signal(run_id, "approve", {"step_id": sid, "plan": edited})
        return await self._deliver(run_id)

    async def reject(self, run_id: str, step_id: str | None = None, *, reason: str = "") -> bool:
        """Reject the plan awaiting confirmation: its plan step fails with the reason."""
        sid = awaiting_plan(await self.state(run_id), step_id)
        await self.store.post_signal(run_id, "reject", {"step_id": sid, "reason": reason})
        return await self._deliver(run_id)

    def _adopt_run_defaults(self, state: RunState) -> None:
        """A run taken over uses the agent catalog and default model it was started with, unless
        this engine was given its own."""
        if not self._explicit_agents and state.agents_dir is not None:
            self.services.adopt(Path(state.agents_dir), state.default_model)

    def _check_edited_plan(self, state: RunState, step_id: str, plan: dict[str, Any]) -> None:
        spec = state.steps[step_id].spec
        assert isinstance(spec, PlanStep)
        taken = plans.history(state, state.steps[step_id]).get("taken", [])
        problems = check_plan(plan, spec, agents=self.services.catalog, taken=taken)
        if problems:
            raise SpecError(problems, source="edited plan", subject="plan")

    async def _deliver(self, run_id: str) -> bool:
        """Wake the local driver, or drive the run here if nobody does; False if another live
        process drives it (it picks the signal up within a fraction of a second)."""
        driver = self._drivers.get(run_id)
        if driver is not None:
            driver.poke()
            return True
        try:
            await self.resume(run_id)
        except LeaseHeldError:
            return False
        return run_id in self._tasks

    # ---------------------------------------------------------------------- events

    async def events(
        self, run_id: str, *, after_seq: int = 0, follow: bool = False
    ) -> AsyncIterator[StoredEvent]:
        """The run's events after `after_seq`; with `follow`, keep streaming until it completes."""
        queue = self.bus.subscribe(run_id) if follow else None
        try:
            last = after_seq
            for stored in await self.store.read(run_id, after_seq=after_seq):
                last = stored.seq
                yield stored
            while follow and not await self._finished(run_id):
                async for stored in self._next_events(run_id, last, queue):
                    last = stored.seq
                    yield stored
            if follow:  # what was committed together with the final status
                for stored in await self.store.read(run_id, after_seq=last):
                    yield stored
        finally:
            if queue is not None:
                self.bus.unsubscribe(run_id, queue)

    async def _next_events(
        self, run_id: str, last: int, queue: asyncio.Queue[StoredEvent | None] | None
    ) -> AsyncIterator[StoredEvent]:
        if queue is not None and run_id in self._tasks:
            item = await queue.get()
            if item is not None and item.seq > last:
                yield item
                return
        else:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        for stored in await self.store.read(run_id, after_seq=last):
            yield stored

    async def _finished(self, run_id: str) -> bool:
        return (await self.store.get_run(run_id)).status in TERMINAL_STATUSES

    # -------------------------------------------------------------------- internals

    def _spawn(self, state: RunState, lease: Lease, *, resumed: bool) -> None:
        driver = RunDriver(
            state=state,
            store=self.store,
            lease=lease,
            bus=self.bus,
            clock=self._clock,
            services=self.services,
        )
        self._drivers[state.run_id] = driver
        task = asyncio.create_task(self._drive(driver, resumed), name=state.run_id)
        self._tasks[state.run_id] = task

    async def _drive(self, driver: RunDriver, resumed: bool) -> RunState:
        run_id = driver.state.run_id
        try:
            async with self._run_slots:
                with telemetry.run_span(run_id, driver.state.workflow.name):
                    return await driver.drive(resumed=resumed)
        finally:
            self._drivers.pop(run_id, None)
            self._tasks.pop(run_id, None)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_lease(driver.lease))


class _LazyAgentNames:
    """Checks agent names against the catalog, loading it only when a workflow has agent steps."""

    def __init__(self, services: AgentServices) -> None:
        self._services = services

    def check(self, names_with_paths: Iterable[tuple[str, str]]) -> list[Problem]:
        references = list(names_with_paths)
        if not references:
            return []
        return self._services.catalog.check(references)


def _check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise UsageError(
            f"run id {run_id!r} is not valid: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return run_id
