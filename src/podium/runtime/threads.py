"""Threads (SPEC F17): a thread is a conversation, and each new message starts a run on it.

`ask` routes the message to an agent (runtime/routing.py), builds a one-step workflow whose
`agent` step carries the thread's earlier exchanges as its `history` (oldest first, the newest
kept within `[threads]` limits, saying what was left out), and records the thread, the message,
the routing and the busy policy on `run.created`. New input while a run on the thread is live
(pending, running or waiting) is rejected (a conditional create, so two asks at once never both
start), queued, or interrupts the live run. A queued run (or one that interrupted another) is
created at once and `wait_turn` holds it, lease held and renewed, until no older run on its
thread is live: whichever engine drives it (the asker, a worker after a crash, `podium resume`)
waits the same way, so the order survives restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podium.clock import Clock
from podium.core import events as ev
from podium.core.fold import apply, new_state, replay
from podium.core.redact import Redactor
from podium.core.state import RunState
from podium.errors import InvalidTransitionError, ThreadBusyError, UsageError
from podium.ids import new_run_id
from podium.runtime.routing import choose_agent
from podium.runtime.runner import LeasePolicy, RunDriver
from podium.runtime.services import AgentServices
from podium.runtime.submission import new_run
from podium.runtime.workspace import choose_workspace
from podium.spec.model import AgentStep
from podium.spec.routing import ON_BUSY, OnBusy, ThreadsConfig
from podium.store.base import (
    EventStore,
    Lease,
    RunRecord,
    RunStatus,
    StoredEvent,
)

ANSWER_STEP = "answer"
THREAD_WORKFLOW = "thread"
LIVE: tuple[RunStatus, ...] = ("pending", "running", "waiting")
THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TURN_POLL_SECONDS = 1.0
INTERRUPTED = "interrupted by new input on thread"  # the cancel reason, then the thread id


class Engine(Protocol):
    """What asking needs of the engine (runtime/engine.py): its store, agents, clock, lease
    owner and policy, where new runs work, starting a driver, and cancelling a run."""

    store: EventStore
    services: AgentServices
    _clock: Clock
    _owner: str
    _policy: LeasePolicy
    _workspace: Path | None
    secret_inputs: dict[str, str]

    @property
    def mode(self) -> str: ...

    def redactor(self) -> Redactor: ...

    def _spawn(self, state: RunState, lease: Lease, *, resumed: bool) -> None: ...

    async def cancel(self, run_id: str, reason: str = "") -> bool: ...


@dataclass(frozen=True, slots=True)
class Asked:
    """What `ask` started: the run, its thread (`new_thread` if this message began it), the
    agent and how it was chosen, and the live runs it waits for or interrupted."""

    run_id: str
    thread: str
    agent: str
    routing: dict[str, Any]
    new_thread: bool
    waits_for: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """A thread's listing row: its run count and its newest run's id, status and message."""

    thread: str
    runs: int
    last_run_id: str
    status: str
    last_message: str | None
    updated_at: Any = field(compare=False)


async def ask(
    engine: Engine,
    message: str,
    *,
    thread: str | None = None,
    new_thread: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    on_busy: str | None = None,
    run_id: str | None = None,
    workspace: str | os.PathLike[str] | None = None,
    routed: dict[str, Any] | None = None,
) -> Asked:
    """Start a run answering `message` on `thread` (an existing one), on a new thread named
    `new_thread`, or on a new thread with a generated id; see the module's docstring. In a
    control engine the run is left for a worker to claim. `routed` is a routing record an
    earlier `ask` of the same message made (the CLI's rehearsal): its agent is checked again
    (it exists, it is not blocked), its router is not asked again."""
    if not message.strip():
        raise UsageError("the message is empty; say something to ask")
    message = engine.redactor().text(message)  # recorded on run.created: never a secret
    config = engine.services.config
    busy = _on_busy(on_busy, config.threads)
    tid, fresh = await _thread_for(engine.store, thread, new_thread)
    routing = await choose_agent(engine.services, message, agent, routed)
    live = [] if fresh else await _live_runs(engine.store, tid)
    if live and busy == "reject":
        raise ThreadBusyError(tid, live[-1].run_id)
    stopping = {r.run_id for r in live} if busy == "interrupt" else set()
    earlier = await history(engine.store, tid, config.threads, stopping) if not fresh else []
    workflow = _workflow(routing["agent"], earlier, model)
    where = choose_workspace(workflow, workspace if workspace is not None else engine._workspace)
    created, wf = new_run(
        workflow,
        {"message": message},
        run_id=run_id,
        workspace=where,
        services=engine.services,
        clock=engine._clock,
        memory=engine.secret_inputs,
    )
    created = created.model_copy(
        update={"thread": tid, "message": message, "routing": routing, "on_busy": busy}
    )
    interrupted = await _interrupt(engine, tid, live) if busy == "interrupt" else ()
    drive = engine.mode != "control"
    lease = await engine.store.create_run(
        created,
        workflow_name=wf.name,
        lease_owner=engine._owner if drive else None,
        ttl_seconds=engine._policy.ttl_seconds,
        exclusive=busy == "reject",
    )
    if lease is not None:
        engine._spawn(new_state(created, wf), lease, resumed=False)
    waits = tuple(r.run_id for r in live)
    return Asked(created.run_id, tid, routing["agent"], routing, fresh, waits, interrupted)


async def threads(store: EventStore, *, limit: int = 100) -> list[ThreadSummary]:
    """Threads, the most recently asked first, from the store's thread index; only each
    thread's newest run is read (for its message)."""
    if limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    found = []
    for record in await store.list_threads(limit=limit):
        last = record.last_run
        first = await store.read(last.run_id)
        message = getattr(first[0].event, "message", None) if first else None
        found.append(
            ThreadSummary(
                record.thread, record.runs, last.run_id, last.status, message, last.updated_at
            )
        )
    return found


async def thread_runs(store: EventStore, thread: str, *, limit: int = 1000) -> list[RunRecord]:
    """The thread's runs, newest first; UsageError if there is no such thread."""
    runs = await store.list_runs(thread=thread, limit=limit)
    if not runs:
        raise UsageError(_no_thread(thread))
    return runs


async def history(
    store: EventStore,
    thread: str,
    limits: ThreadsConfig,
    interrupting: set[str] | None = None,
    *,
    older_than: RunRecord | None = None,
) -> list[dict[str, str]]:
    """The thread's earlier exchanges as chat messages, oldest first: each run's message and
    its answer (or what became of it; `interrupting` are the live runs the new message stops).
    The newest `limits.history_messages` exchanges are kept within `limits.history_chars`; the
    first kept message says how many were left out. With `older_than`, only the runs created
    before that one count."""
    records = await _all_runs(store, thread)
    if older_than is not None:
        records = [r for r in records if _older(r, older_than)]
    kept: list[list[dict[str, str]]] = []
    budget = limits.history_chars
    for record in records[: limits.history_messages]:  # newest first
        if budget <= 0:
            break
        exchange = await _exchange(store, record, record.run_id in (interrupting or ()))
        size = sum(len(m["content"]) for m in exchange)
        if size > budget and kept:
            break
        if size > budget:  # the newest exchange alone is too long: cut it, say so
            exchange = [_cut(m, budget // len(exchange)) for m in exchange]
        budget -= min(size, budget)
        kept.append(exchange)
    left_out = len(records) - len(kept)
    messages = [m for exchange in reversed(kept) for m in exchange]
    if left_out and messages:
        note = (
            f"[{left_out} earlier exchange{'s' if left_out != 1 else ''} of this thread "
            "left out to stay within the context limit]\n\n"
        )
        messages[0] = {**messages[0], "content": note + messages[0]["content"]}
    return messages


async def wait_turn(
    store: EventStore, driver: RunDriver, policy: LeasePolicy, limits: ThreadsConfig
) -> None:
    """Hold a thread's run that has not started while an older run on its thread is live,
    renewing its lease meanwhile; return at once for any other run, or when a signal (a cancel)
    waits for it. A run that waited then catches up: `thread.caught_up` records its answer
    step's history as the thread holds it now (the answers it waited for, within `limits`)."""
    state = driver.state
    if state.thread is None or state.seq != 1:
        return
    run_id, thread = state.run_id, state.thread["id"]
    mine = await store.get_run(run_id)
    renewed = asyncio.get_running_loop().time()
    waited = False
    while True:
        ahead = [r for r in await _live_runs(store, thread) if _older(r, mine)]
        if not ahead:
            break
        if await store.pending_signals(run_id):
            return
        waited = True
        now = asyncio.get_running_loop().time()
        if now - renewed >= policy.heartbeat_seconds:
            driver.lease = await store.renew_lease(driver.lease, ttl_seconds=policy.ttl_seconds)
            renewed = now
        await store.wait_for_change(timeout_seconds=TURN_POLL_SECONDS)
    if waited:
        await _catch_up(store, driver, limits, mine)


async def _catch_up(
    store: EventStore, driver: RunDriver, limits: ThreadsConfig, mine: RunRecord
) -> None:
    """Commit `thread.caught_up` before the run's first turn if the thread's history changed
    since the message was asked (the driver then starts from it, as a replay does)."""
    state, thread = driver.state, mine.thread
    step = state.steps.get(ANSWER_STEP)
    if thread is None or step is None or not isinstance(step.spec, AgentStep):
        return
    now = await history(store, thread, limits, older_than=mine)
    if now == [said.model_dump() for said in step.spec.history]:
        return
    event = ev.ThreadCaughtUp(at=await store.now(), step_id=ANSWER_STEP, history=now)
    event = state.redactor.model(event)
    seq = await store.append(
        state.run_id, [event], expected_seq=state.seq, epoch=driver.lease.epoch
    )
    apply(state, event)
    driver._committed_seq = seq  # committed before the driver's first turn, like run.created
    driver.bus.publish(state.run_id, [StoredEvent(state.run_id, seq, event)])


# -- helpers -----------------------------------------------------------------------------------


def _on_busy(given: str | None, config: ThreadsConfig) -> OnBusy:
    if given is None:
        return config.on_busy
    for choice in ON_BUSY:
        if given == choice:
            return choice
    raise UsageError(f"on_busy {given!r} is not one of {', '.join(ON_BUSY)}")


async def _thread_for(
    store: EventStore, thread: str | None, new_thread: str | None
) -> tuple[str, bool]:
    """The thread id and whether it is new."""
    if thread is not None and new_thread is not None:
        raise UsageError("give either --thread T (continue it) or --new-thread T, not both")
    if thread is not None:
        if not await store.list_runs(thread=thread, limit=1):
            raise UsageError(_no_thread(thread))
        return thread, False
    if new_thread is not None:
        if not THREAD_ID.match(new_thread):
            raise UsageError(
                f"thread id {new_thread!r} is not valid: use 1-128 letters, digits, '_', '-' "
                "or '.', starting with a letter or digit"
            )
        if await store.list_runs(thread=new_thread, limit=1):
            raise UsageError(
                f"thread {new_thread} already exists; continue it with --thread {new_thread}"
            )
        return new_thread, True
    return f"th_{new_run_id().removeprefix('run_')}", True


def _no_thread(thread: str) -> str:
    return (
        f"no thread {thread}; `podium threads` lists them (start a thread of that name with "
        f"--new-thread {thread})"
    )


async def _live_runs(store: EventStore, thread: str) -> list[RunRecord]:
    """The thread's live runs, newest first."""
    return await store.list_runs(thread=thread, statuses=LIVE, limit=1000)


async def _all_runs(store: EventStore, thread: str) -> list[RunRecord]:
    """Every run of the thread, newest first (records only: no log is read)."""
    runs: list[RunRecord] = []
    while True:
        after = runs[-1].run_id if runs else None
        page = await store.list_runs(thread=thread, limit=500, after=after)
        runs += page
        if len(page) < 500:
            return runs


def _older(record: RunRecord, mine: RunRecord) -> bool:
    return (record.created_at, record.run_id) < (mine.created_at, mine.run_id)


async def _exchange(
    store: EventStore, record: RunRecord, interrupted: bool
) -> list[dict[str, str]]:
    """One earlier run as a user message and the assistant's answer (or what became of it)."""
    state = replay(stored.event for stored in await store.read(record.run_id))
    said = state.thread["message"] if state.thread else None
    question = {"role": "user", "content": said or ""}
    step = state.steps.get(ANSWER_STEP)
    stopped = (state.cancel_reason or "").startswith(INTERRUPTED)
    if step is not None and step.status == "succeeded":
        output = step.output
        answer = output if isinstance(output, str) else _as_text(output)
    elif interrupted or stopped:  # the same words before and after the cancel lands
        answer = f"[no answer: run {record.run_id} was interrupted by the next message]"
    elif state.outcome is None:
        answer = f"[no answer yet: run {record.run_id} was {state.status} when this was sent]"
    else:
        why = state.cancel_reason or state.completed_error or (step.error if step else None)
        why = why or state.status
        answer = f"[no answer: run {record.run_id} {state.status}: {why}]"
    return [question, {"role": "assistant", "content": answer}]


def _cut(message: dict[str, str], room: int) -> dict[str, str]:
    text = message["content"]
    if len(text) <= room:
        return message
    shown = text[-max(room, 0) :] if room > 0 else ""
    return {**message, "content": f"[cut: the first {len(text) - len(shown):,} characters]{shown}"}


def _as_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _workflow(agent: str, earlier: Sequence[dict[str, str]], model: str | None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": ANSWER_STEP,
        "kind": "agent",
        "agent": agent,
        "prompt": "${{ inputs.message }}",
        "context": "none",
    }
    if earlier:
        step["history"] = list(earlier)
    if model is not None:
        step["model"] = model
    return {
        "name": THREAD_WORKFLOW,
        "inputs": {"message": {"type": "string"}},
        "steps": [step],
    }


async def _interrupt(engine: Engine, thread: str, live: Sequence[RunRecord]) -> tuple[str, ...]:
    """Cancel the thread's live runs (the new run waits for them to end)."""
    reason = f"{INTERRUPTED} {thread}"
    stopped = []
    for record in live:
        try:
            await engine.cancel(record.run_id, reason)
        except InvalidTransitionError:  # it finished meanwhile
            continue
        stopped.append(record.run_id)
    return tuple(stopped)
