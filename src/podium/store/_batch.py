"""Group commit, shared by the SQL stores: queued writes are checked against the runs' positions,
then written in one transaction; a refused request gets its error as its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podium.core.events import DEFAULT_QUEUE, Event, RunCreated, encode
from podium.errors import ConcurrencyError, RunExistsError, RunNotFoundError, ThreadBusyError
from podium.store._sql import (
    CONSUME_SIGNAL,
    INSERT_EVENT,
    INSERT_RUN,
    UPDATE_RUN_AFTER_APPEND,
    stale_message,
)
from podium.store.base import RunStatus

EventRow = tuple[str, int, str, float, bytes]
Outcome = int | BaseException


# run_id, workflow_name, created_at, updated_at, last_seq, epoch, owner, lease_expires_at,
# thread, queue: INSERT_RUN's parameters
RunRow = tuple[str, str, float, float, int, int, str | None, float | None, str | None, str]


@dataclass(frozen=True, slots=True)
class CreateRun:
    run_id: str
    workflow_name: str
    rows: list[EventRow]  # run.created, then what must be committed with it
    owner: str | None = None
    lease_expires_at: float | None = None
    thread: str | None = None
    exclusive: bool = False  # refused if another run on `thread` is live
    queue: str = DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class AppendEvents:
    run_id: str
    expected_seq: int
    epoch: int
    status: RunStatus | None
    consumed: Sequence[int]
    rows: list[EventRow]
    wake_at: float | None = None


WriteRequest = CreateRun | AppendEvents


def create_request(
    created: RunCreated,
    then: Sequence[Event],
    *,
    workflow_name: str,
    owner: str | None,
    lease_expires_at: float | None,
    exclusive: bool,
) -> CreateRun:
    """A `create_run` call as the SQL stores write it: `run.created` at seq 1, then `then`."""
    rows = [event_row(created.run_id, seq, e) for seq, e in enumerate((created, *then), 1)]
    return CreateRun(
        created.run_id,
        workflow_name,
        rows,
        owner,
        lease_expires_at,
        created.thread,
        exclusive,
        created.queue,
    )


def append_request(
    run_id: str,
    events: Sequence[Event],
    *,
    expected_seq: int,
    epoch: int,
    status: RunStatus | None,
    consumed_signals: Sequence[int],
    wake_at: datetime | None,
) -> AppendEvents:
    """An `append` call as the SQL stores write it: rows numbered after `expected_seq`."""
    rows = [event_row(run_id, seq, e) for seq, e in enumerate(events, expected_seq + 1)]
    wake = wake_at.timestamp() if wake_at is not None else None
    return AppendEvents(run_id, expected_seq, epoch, status, consumed_signals, rows, wake)


def event_row(run_id: str, seq: int, event: Event) -> EventRow:
    return (run_id, seq, event.kind, event.at.timestamp(), encode(event))


@dataclass(slots=True)
class WritePlan:
    """Per request its new last seq or the error refusing it; the rows to write, in order."""

    outcomes: list[Outcome] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    updates: list[tuple[int, float | None, str | None, float | None, str]] = field(
        default_factory=list
    )
    consumed: list[tuple[float, int, str]] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, list[Any]]]:
        return [
            (INSERT_RUN, self.runs),
            (INSERT_EVENT, self.events),
            (UPDATE_RUN_AFTER_APPEND, self.updates),
            (CONSUME_SIGNAL, self.consumed),
        ]


def plan_writes(
    requests: Sequence[WriteRequest],
    positions: dict[str, tuple[int, int] | None],
    now: float,
    live_threads: dict[str, str | None] | None = None,
) -> WritePlan:
    """Check each request against `positions` ((last_seq, epoch) per run id, None if absent)
    and, for an exclusive create, `live_threads` (the live run on each of their threads, None
    if there is none).

    Accepted requests advance the positions (and a created run makes its thread live), so later
    requests in the batch see them; a refused request gets its error as its outcome and writes
    nothing.
    """
    plan = WritePlan()
    live = live_threads if live_threads is not None else {}
    for request in requests:
        outcome: Outcome
        try:
            if isinstance(request, CreateRun):
                outcome = _plan_create(plan, request, positions, live)
            else:
                outcome = _plan_append(plan, request, positions, now)
        except (RunExistsError, RunNotFoundError, ConcurrencyError, ThreadBusyError) as refused:
            outcome = refused
        plan.outcomes.append(outcome)
    return plan


def _plan_create(
    plan: WritePlan,
    request: CreateRun,
    positions: dict[str, tuple[int, int] | None],
    live: dict[str, str | None],
) -> int:
    if positions.get(request.run_id) is not None:
        raise RunExistsError(request.run_id)
    if request.thread is not None:
        busy = live.get(request.thread)
        if request.exclusive and busy is not None:
            raise ThreadBusyError(request.thread, busy)
        if busy is None:  # a later exclusive create in this batch sees this run live
            live[request.thread] = request.run_id
    epoch = 0 if request.owner is None else 1
    last_seq = len(request.rows)
    positions[request.run_id] = (last_seq, epoch)
    created_at, updated_at = request.rows[0][3], request.rows[-1][3]
    row = (request.run_id, request.workflow_name, created_at, updated_at, last_seq, epoch)
    plan.runs.append((*row, request.owner, request.lease_expires_at, request.thread, request.queue))
    plan.events.extend(request.rows)
    return last_seq


def _plan_append(
    plan: WritePlan,
    request: AppendEvents,
    positions: dict[str, tuple[int, int] | None],
    now: float,
) -> int:
    run_id, position = request.run_id, positions.get(request.run_id)
    if position is None:
        raise RunNotFoundError(run_id)
    if position != (request.expected_seq, request.epoch):
        raise ConcurrencyError(stale_message(run_id, position, request.expected_seq, request.epoch))
    last_seq = request.expected_seq + len(request.rows)
    positions[run_id] = (last_seq, request.epoch)
    plan.events.extend(request.rows)
    updated_at = request.rows[-1][3] if request.rows else None
    plan.updates.append((last_seq, updated_at, request.status, request.wake_at, run_id))
    plan.consumed.extend((now, signal_id, run_id) for signal_id in request.consumed)
    return last_seq
