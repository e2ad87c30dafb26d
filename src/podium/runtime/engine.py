"""The engine: submit, resume, cancel, retry and skip runs; wait for them; read and follow them.

async with await Engine.open("sqlite:///.podium/podium.db") as engine:
    run_id = await engine.submit("examples/quickstart.yaml", {"name": "world"})
    state = await engine.wait(run_id)

Modes: `local` (the default) drives the runs it submits or is asked to steer, and wakes the ones
it parked; `worker` also claims every runnable run in the store (parked runs that are due, runs
nobody started, runs whose driver died, runs with signals waiting); `control` never drives: it
posts signals and reads, and workers do the driving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from podium import telemetry
from podium.clock import Clock, SystemClock
from podium.config import ProjectConfig, recorded_config
from podium.core.breaker import BreakerPolicy
from podium.core.control import cancel_event, retry_event, skip_event
from podium.core.events import DEFAULT_QUEUE
from podium.core.fold import new_state
from podium.core.redact import Redactor
from podium.core.state import RunState
from podium.errors import ConcurrencyError, LeaseHeldError, UsageError
from podium.ids import RunId
from podium.runtime import approvals, placement, threads, workers
from podium.runtime.bus import EventBus
from podium.runtime.children import ChildRuns
from podium.runtime.execution import ExecutionBackend, InProcessBackend
from podium.runtime.feedback import record_feedback
from podium.runtime.fork import start_fork
from podium.runtime.parking import Waker
from podium.runtime.protected import protected_paths
from podium.runtime.reads import StateCache, committed_state, follow_all, follow_deltas, follow_run
from podium.runtime.runner import LeasePolicy, RunDriver
from podium.runtime.secrets import run_secrets
from podium.runtime.services import AgentServices
from podium.runtime.submission import new_run
from podium.runtime.workspace import choose_workspace
from podium.spec.load import WorkflowSource
from podium.spec.subworkflows import Registry
from podium.steps import Executors
from podium.store import default_store_path, open_store
from podium.store.base import (
    TERMINAL_STATUSES,
    EventStore,
    Lease,
    RunRecord,
    RunStatus,
    SignalKind,
    StoredEvent,
    check_queue,
    current_owner,
)

EngineMode = Literal["local", "worker", "control"]
MODES: tuple[EngineMode, ...] = ("local", "worker", "control")
WAIT_POLL_SECONDS = 1.0


class Engine:
    """Runs workflows durably against one event store."""

    def __init__(
        self,
        store: EventStore,
        *,
        mode: EngineMode = "local",
        max_concurrent_runs: int = 64,
        clock: Clock | None = None,
        workspace: str | os.PathLike[str] | None = None,
        agents_dir: str | os.PathLike[str] | None = None,
        default_model: str | None = None,
        mcp_servers: Mapping[str, Mapping[str, Any]] | None = None,
        services: AgentServices | None = None,
        breaker: BreakerPolicy | Mapping[str, Any] | None = None,
        executors: Executors | None = None,
        backend: ExecutionBackend | None = None,
        lease: LeasePolicy | None = None,
        config: ProjectConfig | None = None,
        workflows: Registry | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        ray_address: str | None = None,
    ) -> None:
        """`agents_dir` is the project folder whose `agents/` holds the catalog (default: the
        workspace, else the current directory; `~/.config/podium/agents` is read too);
        `default_model` applies to agents that name none (else `PODIUM_MODEL`); `breaker` is
        the circuit-breaker policy for every agent and model (default `BreakerPolicy()`);
        `executors` overrides step kinds' executors and `backend` where attempts run (default:
        in this process); `lease` sets the lease TTL, heartbeat and parking threshold.
        `config` is the project configuration (`podium.config.load_config`): its providers, MCP
        servers, agents folder and default model; the explicit arguments win over it. A run
        taken over without one uses the configuration file recorded on the run. `workflows`
        registers names that `workflow` steps may use instead of a file (`{name: path or
        Workflow}`; see spec/subworkflows.py). A `worker` engine claims only runs on one of
        `queues` (`submit(queue=…)`; runs submitted without one are on `default`).
        `ray_address` is the Ray cluster of steps with `execution: ray` (else
        PODIUM_RAY_ADDRESS, else the configuration's; none: a local Ray started on first need;
        see runtime/placement.py)."""
        if max_concurrent_runs < 1:
            raise UsageError("max_concurrent_runs must be at least 1")
        if mode not in MODES:
            raise UsageError(f"engine mode {mode!r} is not one of {', '.join(MODES)}")
        if not queues:
            raise UsageError("queues must name at least one queue (runs without one: 'default')")
        self.queues = tuple(dict.fromkeys(check_queue(name) for name in queues))
        self.store = store
        self.mode: EngineMode = mode
        self.bus = EventBus()
        self._clock = clock or SystemClock()
        self._workspace = Path(workspace) if workspace is not None else None
        self._max_runs = max_concurrent_runs
        self._run_slots = asyncio.Semaphore(max_concurrent_runs)
        self._owner = current_owner()
        self._policy = lease or LeasePolicy()
        self._drivers: dict[str, RunDriver] = {}
        self._tasks: dict[str, asyncio.Task[RunState]] = {}
        self._explicit_agents = agents_dir is not None
        self._explicit_config = config is not None or services is not None
        self.config_notes: list[str] = []
        project = Path(agents_dir) if agents_dir is not None else (self._workspace or Path.cwd())
        self.services = services or AgentServices(
            project_dir=project,
            default_model=default_model,
            mcp_servers=mcp_servers,
            breaker=breaker,
            clock=self._clock,
            config=config,
            agents_given=agents_dir is not None,
        )
        self.backend = backend or placement.PlacedBackend(
            InProcessBackend(executors or Executors(), self.services),
            ray_address=placement.ray_address(ray_address, self.services.config.ray_address),
        )
        worker = mode == "worker"
        self._waker = Waker(
            now=self.store.now,
            wake=self._wake,
            claim=functools.partial(workers.claim, self) if worker else None,
            changed=self._store_changed if worker else None,
        )
        self._settled: set[asyncio.Future[None]] = set()
        self.children = ChildRuns(self, workflows)  # `workflow` steps' child runs
        self._resuming = asyncio.Lock()
        self.secret_inputs: dict[str, str] = {}  # placeholder -> value of the runs submitted here
        self._read_states = StateCache(self.store)

    @classmethod
    async def open(cls, url: str | os.PathLike[str] | None = None, **options: Any) -> Engine:
        """Open the store at `url` (see `podium.store.open_store`); default `PODIUM_DB` or
        `.podium/podium.db`. A `mode="worker"` engine starts claiming runnable runs at once; it
        and a `control` one first check that they can write to the store (StoreError if not), so
        a worker or server on a read-only role, file or replica stops at start, not at its first
        claim."""
        store = await open_store(url if url is not None else default_store_path())
        try:
            engine = cls(store, **options)
            if engine.mode != "local":
                await store.check_writable()
            if engine.mode != "control":  # a Ray cluster named but not there fails here
                await engine.backend.prepare()
        except BaseException:
            await store.close()
            raise
        if engine.mode == "worker":
            engine._waker.start()
        return engine

    async def __aenter__(self) -> Engine:
        if self.mode == "worker":  # built directly, not by `open`: start claiming now
            self._waker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def drain(self, seconds: float) -> list[str]:
        """Take no more runs and give the ones in hand `seconds` to finish or park; the ids of
        those still driven then, which `close` gives back (see runtime/workers.py)."""
        return await workers.drain(self, seconds)

    async def close(self) -> None:
        """Stop driving (in-flight steps stay in flight for a later resume) and close the store.
        Runs parked here stay parked in the store; any engine that resumes them wakes them."""
        await self._waker.aclose()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.backend.aclose()
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
        queue: str = DEFAULT_QUEUE,
    ) -> RunId:
        """Validate, record `run.created`, and (unless `start=False`, or in control mode, where
        a worker will claim it) start driving the run. `queue` says which workers may claim it
        when this engine does not drive it (`podium worker --queue`)."""
        where = choose_workspace(workflow, workspace if workspace is not None else self._workspace)
        created, wf = new_run(
            workflow,
            inputs,
            run_id=run_id,
            workspace=where,
            services=self.services,
            clock=self._clock,
            workflows=self.children.workflows,
            memory=self.secret_inputs,
            queue=queue,
        )
        drive = start and self.mode != "control"
        if self.mode != "control":  # what its steps need (a Ray cluster) is there, or say so
            await self.backend.prepare(wf)
        lease = await self.store.create_run(
            created,
            workflow_name=wf.name,
            lease_owner=self._owner if drive else None,
            ttl_seconds=self._policy.ttl_seconds,
        )
        if lease is not None:  # created already leased to us: no worker can claim it first
            self._spawn(new_state(created, wf), lease, resumed=False)
        return RunId(created.run_id)

    async def run(
        self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> RunState:
        """Submit and wait."""
        return await self.wait(await self.submit(workflow, inputs, **options))

    async def resume(self, run_id: str) -> RunState:
        """Take over a run that nobody drives (after a crash, or parked) and drive it.
        LeaseHeldError if a live process drives it. Returns the committed state (a finished
        run with no signal waiting to reopen it is returned as it is)."""
        self._refuse_in_control_mode("resume")
        async with self._resuming:  # two children ending at once wake their parent once
            if run_id in self._tasks:
                return await self.state(run_id)
            state = await committed_state(self.store, run_id)
            finished = state.outcome is not None and not await self.store.pending_signals(run_id)
            if not finished:
                lease = await self._acquire(run_id)
                state = await committed_state(self.store, run_id)  # committed before we held it
                self._adopt_run_defaults(state)
                self._spawn(state, lease, resumed=True)
                return state
        await self.children.finished(state)  # a child whose parent never heard of its end
        return state

    async def fork(
        self, run_id: str, from_step: str, inputs: Mapping[str, Any] | None = None
    ) -> RunId:
        """A new run of `run_id`'s workflow that reuses its committed outputs of every step not
        downstream of `from_step` and runs the rest anew (see runtime/fork.py)."""
        self._adopt_run_defaults(await self.state(run_id))
        args = (self.services, self._clock, self._owner, self._policy.ttl_seconds)
        state, lease = await start_fork(
            self.store, run_id, from_step, inputs, *args, memory=self.secret_inputs
        )
        if self.mode == "control":
            await self.store.release_lease(lease)  # a worker claims it
        else:
            self._spawn(state, lease, resumed=False)
        return RunId(state.run_id)

    async def wait(self, run_id: str) -> RunState:
        """Wait until the run completes, waits for a person or is dead-lettered; return its
        committed state.
        A run parked on a timer is waited through (it wakes, here or in a worker)."""
        while True:
            task = self._tasks.get(run_id)
            if task is not None:
                settled = await self._await_driver(task)
                if settled is None:  # the engine is closing
                    return await self.state(run_id)
                if settled.outcome is not None or settled.awaits_person:
                    return settled  # the driver's last act was to commit: nothing is pending
                continue
            record = await self.store.get_run(run_id)
            if record.status in TERMINAL_STATUSES or record.status == "dead":
                return await self.state(run_id)  # dead: nothing runs until a person revives it
            if record.status == "waiting" and not self._waker.is_parked(run_id):
                state = await self.state(run_id)
                if state.awaits_person or await self.children.parked_for_person(state):
                    return state
            await self._next_change(run_id, record.last_seq)

    async def state(self, run_id: str) -> RunState:
        """The run's committed state. For a run this engine drives it is the driver's own state
        when everything it holds is committed (read it before the next await), else a replay."""
        driver = self._drivers.get(run_id)
        if driver is not None and driver.committed:
            return driver.state
        return await committed_state(self.store, run_id)

    snapshot = state

    async def latest(self, record: RunRecord) -> RunState:
        """The run's committed state to render, not to change: shared with other readers and
        valid until the next await (a server's pages poll it; see reads.StateCache)."""
        driver = self._drivers.get(record.run_id)
        if driver is not None and driver.committed:
            return driver.state
        return await self._read_states.latest(record)

    def is_driving(self, run_id: str) -> bool:
        return run_id in self._tasks

    # ---------------------------------------------------------------------- reads

    async def list_runs(
        self,
        *,
        statuses: Sequence[RunStatus] | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; `after` is the last run id of the previous page."""
        if limit < 1:
            raise UsageError(f"limit must be at least 1, got {limit}")
        return await self.store.list_runs(
            statuses=statuses, workflow_name=workflow_name, limit=limit, after=after
        )

    async def events(
        self, run_id: str, *, after_seq: int = 0, follow: bool = False
    ) -> AsyncIterator[StoredEvent]:
        """The run's committed events after `after_seq`; with `follow`, keep streaming until it
        completes (from the live bus when this engine drives it, else from the store)."""
        if not follow:
            for stored in await self.store.read(run_id, after_seq=after_seq):
                yield stored
            return
        async for stored in follow_run(
            self.store, self.bus, run_id, after_seq=after_seq, driving=self.is_driving
        ):
            yield stored

    def deltas(self, run_id: str) -> AsyncIterator[tuple[str, str]]:
        """Live text `(step_id, fragment)` of the run's steps while this engine drives it."""
        return follow_deltas(self.bus, run_id, lambda: self._tasks.get(run_id))

    def subscribe(self) -> AsyncIterator[StoredEvent]:
        """Committed events of every run this engine drives, as they commit (bounded: a slow
        consumer is caught up from the store)."""
        return follow_all(self.store, self.bus)

    # --------------------------------------------------------------------- control

    async def cancel(self, run_id: str, reason: str = "") -> bool:
        """Request cancellation. Returns True if this engine now drives the run to its end."""
        cancel_event(await self.state(run_id), self._clock.now(), reason)
        return await self._signal(run_id, "cancel", {"reason": reason})

    async def retry(self, run_id: str, step_id: str) -> bool:
        """Run a failed, interrupted, cancelled or skipped step again (and what waits for it)."""
        retry_event(await self.state(run_id), step_id, self._clock.now())
        return await self._signal(run_id, "retry", {"step_id": step_id})

    async def skip(self, run_id: str, step_id: str) -> bool:
        """Mark a waiting, interrupted or failed step skipped and carry on without it."""
        skip_event(await self.state(run_id), step_id, self._clock.now())
        return await self._signal(run_id, "skip", {"step_id": step_id})

    async def approvals(self, run_id: str | None = None) -> list[approvals.Waiting]:
        """What waits for a person (a step's input, a plan, a held tool call) in `run_id` and
        its live child runs, or in every live run (at most `runtime.approvals.LISTED_RUNS`,
        newest first)."""
        return await approvals.waiting(self, run_id)

    async def approve(self, run_id: str, step_id: str | None = None, **how: Any) -> bool:
        """Approve a pending step or plan (`plan=`, `edit=`, `set=`: see runtime/approvals)."""
        return await approvals.approve(self, run_id, step_id, **how)

    async def answer(self, run_id: str, step_id: str, value: Any) -> bool:
        """Answer a `human` step (the value is checked): it succeeds with it as its output."""
        return await approvals.answer(self, run_id, step_id, value)

    async def reject(self, run_id: str, step_id: str | None = None, *, reason: str = "") -> bool:
        """Refuse a pending step or plan: the step fails with the reason."""
        return await approvals.reject(self, run_id, step_id, reason=reason)

    feedback = record_feedback  # rate a finished step up or down: see runtime/feedback.py

    async def ask(self, message: str, **how: Any) -> threads.Asked:
        """Start a run answering `message` on a thread (`thread=`, `new_thread=`, `agent=`,
        `model=`, `on_busy=`, `run_id=`, `workspace=`: see runtime/threads.py)."""
        return await threads.ask(self, message, **how)

    async def threads(self, *, limit: int = 100) -> list[threads.ThreadSummary]:
        """Threads, the most recently asked first (see runtime/threads.py)."""
        return await threads.threads(self.store, limit=limit)

    async def _signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> bool:
        """Post a checked signal, then wake the local driver, or drive the run here if nobody
        does; False if another process drives it (or will: a control engine never drives).
        The payload is stored: it is redacted first (an answer or an edit may quote a key)."""
        live = self._drivers.get(run_id)
        redactor = live.state.redactor if live is not None else self.redactor()
        await self.store.post_signal(run_id, kind, redactor.value(payload))
        driver = self._drivers.get(run_id)  # looked up again: it may have stopped meanwhile
        if driver is not None:
            driver.poke()
            return True
        if self.mode == "control":
            return False
        self._waker.forget(run_id)
        try:
            await self.resume(run_id)
        except LeaseHeldError:
            return False
        return run_id in self._tasks

    def _adopt_run_defaults(self, state: RunState) -> None:
        """A run taken over uses the agent catalog, default model and project configuration
        (re-read from the file recorded on the run) it was started with, unless this engine was
        given its own. A changed file is used and noted in `config_notes`."""
        config = None
        if not self._explicit_config and self.services.adoptable and state.config:
            config, note = recorded_config(state.config)
            self.config_notes += [note] if note else []
        if not self._explicit_agents and state.agents_dir is not None:
            self.services.adopt(Path(state.agents_dir), state.default_model, config)

    def _refuse_in_control_mode(self, what: str) -> None:
        if self.mode == "control":
            raise UsageError(
                f"this engine is in control mode and never drives runs, so it cannot {what}; "
                "open a local or worker engine for that"
            )

    # -------------------------------------------------------------------- internals

    async def _acquire(self, run_id: str) -> Lease:
        return await self.store.acquire_lease(
            run_id, self._owner, ttl_seconds=self._policy.ttl_seconds
        )

    def redactor(self) -> Redactor:
        """What belongs to no run yet (a thread's message, a signal for a run driven elsewhere)
        is redacted with: the key formats and the project's MCP secrets."""
        return Redactor({}, self.services.config.secret_values())

    def _spawn(self, state: RunState, lease: Lease, *, resumed: bool) -> None:
        if state.run_id in self._tasks:
            raise ConcurrencyError(f"run {state.run_id} already has a driver in this engine")
        secrets = run_secrets(state, self.services.config, self.secret_inputs)
        state.redactor = secrets.redactor  # every event is redacted before it is applied
        driver = RunDriver(
            state=state,
            store=self.store,
            lease=lease,
            bus=self.bus,
            clock=self._clock,
            backend=self.backend,
            policy=self._policy,
            hooks=self.children,
            protected=protected_paths(self.store, self.services),
            secrets=secrets,
        )
        self._drivers[state.run_id] = driver
        task = asyncio.create_task(self._drive(driver, resumed), name=state.run_id)
        task.add_done_callback(workers.report_stop)
        self._tasks[state.run_id] = task
        self._notify()

    def _notify(self) -> None:
        """Wake every `wait` that waits on this engine's drivers starting or stopping."""
        waiters, self._settled = self._settled, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drive(self, driver: RunDriver, resumed: bool) -> RunState:
        run_id = driver.state.run_id
        try:
            with telemetry.run_span(run_id, driver.state.workflow.name):
                limits = self.services.config.threads  # a queued thread run waits its turn
                await threads.wait_turn(self.store, driver, self._policy, limits)
                return await driver.drive(resumed=resumed, slot=self._run_slots)
        finally:
            if self._drivers.get(run_id) is driver:
                del self._drivers[run_id], self._tasks[run_id]
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_lease(driver.lease))
            if driver.parked_until is not None:
                self._waker.park(run_id, driver.parked_until)
            self._notify()

    async def _await_driver(self, task: asyncio.Task[RunState]) -> RunState | None:
        """The state the driver stopped with; None if it was cancelled (the engine closes)."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # we were cancelled, not the run's driver
                raise
            return None

    async def _next_change(self, run_id: str, last_seq: int) -> None:
        """Until this engine's drivers settle something, or the run gets new events elsewhere."""
        if self._waker.is_parked(run_id):
            waiter = asyncio.get_running_loop().create_future()
            self._settled.add(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, WAIT_POLL_SECONDS)
            return
        await self.store.wait_for_events(
            run_id, after_seq=last_seq, timeout_seconds=WAIT_POLL_SECONDS
        )

    async def _wake(self, run_id: str) -> None:
        """A parked run is due: drive it again (unless somebody else already does)."""
        if run_id in self._tasks:
            return
        with contextlib.suppress(LeaseHeldError):
            await self.resume(run_id)

    async def _store_changed(self, seconds: float) -> bool:
        return await self.store.wait_for_change(timeout_seconds=seconds)
