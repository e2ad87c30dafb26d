"""The live view of a run this process drives: a Rich `Live` table of steps on a terminal, plain
lines (one per step transition) otherwise. It re-renders at most ~10 times a second and reads
the driver's live state, so it never slows the engine down."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from podium.cli.render import clock_time, counts, duration, shorten, span, styled
from podium.core import events as ev
from podium.core.state import RunState, StepState, StepStatus
from podium.runtime.bus import Subscription
from podium.runtime.engine import Engine
from podium.store.base import StoredEvent
from podium.views import cancel_reason

MIN_INTERVAL_SECONDS = 0.1
IDLE_REFRESH_SECONDS = 0.5
MAX_ROWS = 40
MAX_ID_WIDTH = 24
ACTIVE = frozenset({StepStatus.RUNNING, StepStatus.RETRYING, StepStatus.INTERRUPTED})
PINNED = frozenset(
    {StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.WAITING, StepStatus.RETRYING}
)
UPCOMING = frozenset({StepStatus.READY, StepStatus.PENDING})
STREAM_CHARS = 48  # how much of a running agent's streamed text the live table shows


class _Display(Protocol):
    ticks: bool

    def __enter__(self) -> object: ...

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def update(self, events: list[StoredEvent], state: RunState) -> None: ...

    def stream(self, step_id: str, text: str) -> None: ...


async def watch(engine: Engine, run_id: str, console: Console) -> RunState:
    """Show the run (which this engine drives) until it completes or parks; return its state.

    Call it right after submit/resume/retry/skip, before anything else awaits, so that no event
    is missed: it subscribes to the engine's bus before the driver takes its first turn.
    """
    subscription = engine.bus.subscribe(run_id)
    deltas = engine.bus.subscribe_deltas(run_id)
    waiter = asyncio.ensure_future(engine.wait(run_id))
    display: _Display = LiveTable(console) if is_tty(console) else PlainLines(console)
    try:
        with display:
            return await _pump(engine, run_id, (subscription, deltas), display, waiter)
    finally:
        engine.bus.unsubscribe(subscription)
        engine.bus.unsubscribe_deltas(run_id, deltas)
        waiter.cancel()


async def _pump(
    engine: Engine,
    run_id: str,
    queues: tuple[Subscription, asyncio.Queue[tuple[str, str]]],
    display: _Display,
    waiter: asyncio.Future[RunState],
) -> RunState:
    queue, deltas = queues
    display.update([], await engine.state(run_id))
    events: list[StoredEvent] = []
    rendered_at = time.monotonic()
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=MIN_INTERVAL_SECONDS)
        while not deltas.empty():
            display.stream(*deltas.get_nowait())
        events += await _drain(engine, queue)
        idle = time.monotonic() - rendered_at >= IDLE_REFRESH_SECONDS
        if waiter.done() or not (events or (display.ticks and idle)):
            continue
        display.update(events, await engine.state(run_id))
        events, rendered_at = [], time.monotonic()
    state = waiter.result()
    display.update(events + await _drain(engine, queue), state)
    return state


async def _drain(engine: Engine, subscription: Subscription) -> list[StoredEvent]:
    """What the bus delivered since the last look; if the view fell behind, what it missed is
    read from the store instead."""
    events = []
    queue = subscription.queue
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            events.append(item)
    if subscription.lagged:
        for run_id, first in subscription.caught_up().items():
            events = [e for e in events if e.seq < first]
            events += await engine.store.read(run_id, after_seq=first - 1)
    return events


def is_tty(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


# ------------------------------------------------------------------------------ plain lines


class PlainLines:
    """`12:00:01  fetch  succeeded  0.4s`: one line per step transition, flushed as it happens."""

    ticks = False

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started: dict[str, datetime] = {}
        self._width = 0

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._console.file.flush()

    def update(self, events: list[StoredEvent], state: RunState) -> None:
        if not self._width:
            self._width = min(max(len(step_id) for step_id in state.steps), MAX_ID_WIDTH)
        lines = [line for stored in events for line in self._lines(stored.event, state)]
        if lines:
            self._console.file.write("\n".join(lines) + "\n")
            self._console.file.flush()

    def stream(self, step_id: str, text: str) -> None:
        """Plain output keeps to one line per transition: streamed text is not printed."""

    def _lines(self, e: ev.Event, state: RunState) -> list[str]:
        if isinstance(e, ev.RunResumed):
            return [self._row(e.at, s, "requeued") for s in e.requeued] + [
                self._row(e.at, s, "interrupted") for s in e.interrupted
            ]
        if isinstance(e, ev.RunCancelRequested):
            why = f": {e.reason}" if e.reason else ""
            return [f"{clock_time(e.at)}  run cancel requested{why}"]
        if isinstance(e, ev.BudgetExceeded):
            return [f"{clock_time(e.at)}  run stopped: {e.message}"]
        if isinstance(e, ev.BreakerChanged):
            return [f"{clock_time(e.at)}  breaker {e.key}: {e.from_status} -> {e.to_status}"]
        if isinstance(e, ev.ToolStarted):
            return []  # its `tool call` line follows when it returns
        if isinstance(e, ev.SignalRefused):
            return [f"{clock_time(e.at)}  {e.signal} request refused: {e.reason}"]
        step_id = getattr(e, "step_id", None)
        return [] if step_id is None else [self._step_line(e, step_id, state)]

    def _step_line(self, e: ev.Event, step_id: str, state: RunState) -> str:
        if isinstance(e, ev.StepStarted):
            self._started[step_id] = e.at
            again = (f"attempt {e.attempt}",) if e.attempt > 1 else ()
            return self._row(e.at, step_id, "running", *again)
        took = duration(span(self._started.get(step_id, state.steps[step_id].started_at), e.at))
        if isinstance(e, ev.StepSucceeded):
            return self._row(e.at, step_id, "succeeded", took)
        if isinstance(e, ev.StepFailed):
            return self._row(e.at, step_id, "failed", took, shorten(e.error, 100))
        if isinstance(e, ev.StepRetrying):
            then = f"next try at {clock_time(e.retry_at)}"
            return self._row(e.at, step_id, "retrying", took, shorten(e.error, 80), then)
        if isinstance(e, ev.StepLost):
            then = "requeued" if e.requeued else "interrupted"
            return self._row(e.at, step_id, then, took, shorten(e.error, 100))
        if isinstance(e, ev.StepSkipped | ev.StepCancelled):
            return self._row(e.at, step_id, e.kind.removeprefix("step."), e.reason)
        return self._row(e.at, step_id, *_note(e))

    def _row(self, at: datetime, step_id: str, status: str, *details: str) -> str:
        self._width = max(self._width, min(len(step_id), MAX_ID_WIDTH))  # plans add longer ids
        cells = [clock_time(at), step_id.ljust(self._width), status.ljust(11), *details]
        return "  ".join(cells).rstrip()


def _note(e: ev.Event) -> tuple[str, ...]:
    """The status word and details of a step's other events: model calls, plans, routing."""
    if isinstance(e, ev.ModelCalled):
        cost = f", ${e.cost_usd:.4f}" if e.cost_usd else ""
        return "model call", f"{e.model}: {e.input_tokens + e.output_tokens:,} tokens{cost}"
    if isinstance(e, ev.PlanGenerated):
        count = len(e.plan.get("steps", []))
        return "planned", f"version {e.version}: {count} step{'s' if count != 1 else ''}"
    if isinstance(e, ev.PlanApproved):
        return ("approved", "as edited") if e.plan is not None else ("approved",)
    if isinstance(e, ev.PlanRejected | ev.ApprovalRejected):
        return "rejected", e.reason
    if isinstance(e, ev.ApprovalRequested) and e.subject == "tool":
        return "asks", f"approval to call {e.input.get('tool')}"
    if isinstance(e, ev.ApprovalRequested):
        return "asks", "a question" if e.subject == "answer" else f"approval of its {e.subject}"
    if isinstance(e, ev.ApprovalGranted | ev.ApprovalEdited):
        return ("approved", "as edited") if isinstance(e, ev.ApprovalEdited) else ("approved",)
    if isinstance(e, ev.ApprovalWithdrawn):
        return "withdrawn", e.reason
    if isinstance(e, ev.AgentRouted):
        return "routed", f"{e.requested} -> {e.selected} ({e.reason})"
    if isinstance(e, ev.ToolCalled):
        return "tool call", e.tool if e.ok else f"{e.tool} failed: {e.error}"
    if isinstance(e, ev.StepProgress):
        done = f"{e.fraction:.0%} " if e.fraction is not None else ""
        return "progress", f"{done}{e.message}".strip()
    if isinstance(e, ev.LoopIterated):
        return "iterates", f"iteration {e.iteration} begins"
    return (e.kind.removeprefix("step.").replace("_", " "),)


# ------------------------------------------------------------------------------- live table


class LiveTable:
    """A Rich `Live` table: running steps first, then the most recent, with a footer of counts."""

    ticks = True

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._streams: dict[str, str] = {}

    def __enter__(self) -> LiveTable:
        self._live.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def update(self, events: list[StoredEvent], state: RunState) -> None:
        table = render_table(state, datetime.now(UTC), self._streams)
        self._live.update(table, refresh=True)

    def stream(self, step_id: str, text: str) -> None:
        self._streams[step_id] = (self._streams.get(step_id, "") + text)[-STREAM_CHARS:]


def render_table(state: RunState, now: datetime, streams: dict[str, str] | None = None) -> Group:
    """A header line (run, workflow, status, elapsed), the step rows (with the tail of the text
    a running agent is streaming), a footer of counts."""
    elapsed = duration(span(state.created_at, now if state.outcome is None else state.updated_at))
    header = Text.assemble(f"run {state.run_id} · {state.workflow.name} · ", styled(state.status))
    header.append(f" · {elapsed}")
    if (reason := cancel_reason(state)) is not None:
        header.append(f" · cancel reason: {reason}")
    pinned, rows = pick_rows(state)
    footer = Text(counts(state), style="dim")
    if len(pinned) + len(rows) < len(state.steps):
        footer.append(_hidden_note(state, [*pinned, *rows]))
    table = Table(show_edge=False, pad_edge=False)
    for name in ("step", "kind", "status", "attempt", "elapsed"):
        table.add_column(name, no_wrap=True)
    live = {k: v for k, v in (streams or {}).items() if state.steps[k].status is StepStatus.RUNNING}
    if live:
        table.add_column("output", no_wrap=True, max_width=STREAM_CHARS, style="dim")
    for number, step in enumerate([*pinned, *rows], 1):
        cells = _cells(step, now)
        table.add_row(*cells, *((_tail(live.get(step.id, "")),) if live else ()))
        if number == len(pinned) and rows:
            table.add_section()
    return Group(header, table, footer)


def _hidden_note(state: RunState, shown: list[StepState]) -> str:
    """`  (showing 40 of 60; 20 succeeded not shown)`: what the rows leave out is collapsed."""
    ok = StepStatus.SUCCEEDED
    hidden = sum(s.status is ok for s in state.steps.values()) - sum(s.status is ok for s in shown)
    return f"  (showing {len(shown)} of {len(state.steps)}; {hidden} succeeded not shown)"


def _tail(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= STREAM_CHARS else "…" + flat[-STREAM_CHARS + 1 :]


def _cells(step: StepState, now: datetime) -> tuple[str, str, Text, str, str]:
    end = step.finished_at or (now if step.status is StepStatus.RUNNING else None)
    return (
        step.id,
        step.spec.kind,  # type: ignore[attr-defined]
        styled(str(step.status)),
        str(step.attempts) if step.attempts else "",
        duration(span(step.started_at, end)),
    )


def pick_rows(state: RunState, limit: int = MAX_ROWS) -> tuple[list[StepState], list[StepState]]:
    """All steps in workflow order if they fit (nothing pinned). Else, pinned above the rest,
    the steps that need a look (failed, interrupted, waiting, retrying, in workflow order), then
    the running ones, the most recently finished, the next to run."""
    steps = state.steps.values()
    if len(state.steps) <= limit:
        return [], list(steps)
    pinned = list(itertools.islice((s for s in steps if s.status in PINNED), limit))
    limit -= len(pinned)
    running = (s for s in steps if s.status in ACTIVE and s.status not in PINNED)
    active = sorted(running, key=_started_key)[:limit]
    recent = heapq.nlargest(
        limit - len(active),
        (s for s in steps if s.terminal and s.finished_at is not None and s.status not in PINNED),
        key=_finished_key,
    )
    upcoming = itertools.islice(
        (s for s in steps if s.status in UPCOMING), limit - len(active) - len(recent)
    )
    return pinned, [*active, *recent, *upcoming]


def _started_key(step: StepState) -> datetime:
    return step.started_at or datetime.min.replace(tzinfo=UTC)


def _finished_key(step: StepState) -> datetime:
    return step.finished_at or datetime.min.replace(tzinfo=UTC)
