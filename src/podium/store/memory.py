"""An in-process event store with the SQLite store's semantics: for tests, demos and fakes."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from podium.clock import Clock, SystemClock
from podium.core.events import Event, RunCreated, decode_many, encode
from podium.errors import (
    ConcurrencyError,
    LeaseHeldError,
    RunExistsError,
    RunNotFoundError,
    ThreadBusyError,
)
from podium.store._changes import ChangeSignal, events_or_wait
from podium.store._sql import (
    check_prunable,
    claim_reason,
    lease_is_free,
    lease_is_takeable,
    lost_lease_message,
    stale_message,
)
from podium.store.base import (
    TERMINAL_STATUSES,
    Claim,
    Lease,
    RunRecord,
    RunStatus,
    Signal,
    SignalKind,
    StoredEvent,
    ThreadRecord,
    taken_from,
)

_LIVE = ("pending", "running", "waiting")


def _row(event: Event) -> tuple[str, float, bytes]:
    """An event as the SQLite store keeps it: kind, Unix time, the JSON of the rest."""
    return (event.kind, event.at.timestamp(), encode(event))


@dataclass(slots=True)
class _Run:
    record: RunRecord
    rows: list[tuple[str, float, bytes]] = field(default_factory=list)


class MemoryEventStore:
    """Events are kept encoded, as a database keeps them, so what reads back is what SQLite gives.

    No method awaits before it has finished changing the store, so concurrent tasks never
    interleave within one (claims included): no lock is needed. Lease expiry and due timers are
    measured on `clock` (default the system clock; pass a `podium.testing.FakeClock` to test
    expiry without sleeping).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._runs: dict[str, _Run] = {}
        self._signals: dict[int, tuple[Signal, bool]] = {}
        self._last_signal_id = 0
        self._changes = ChangeSignal()
        self._log: list[tuple[int, str, int]] = []  # (global position, run_id, seq)
        self._last_position = 0

    async def now(self) -> datetime:
        return self._clock.now()

    async def create_run(
        self,
        created: RunCreated,
        *,
        workflow_name: str,
        lease_owner: str | None = None,
        ttl_seconds: float = 0.0,
        then: Sequence[Event] = (),
        exclusive: bool = False,
    ) -> Lease | None:
        if created.run_id in self._runs:
            raise RunExistsError(created.run_id)
        if exclusive and created.thread is not None:
            live = self._page(_LIVE, None, 1_000_000, None, created.thread)
            if live:
                raise ThreadBusyError(created.thread, live[-1].run_id)
        expires_at = self._clock.now() + timedelta(seconds=ttl_seconds)
        leased = lease_owner is not None
        record = RunRecord(
            run_id=created.run_id,
            workflow_name=workflow_name,
            status="pending",
            created_at=created.at,
            updated_at=then[-1].at if then else created.at,
            last_seq=1 + len(then),
            owner=lease_owner,
            epoch=1 if leased else 0,
            lease_expires_at=expires_at if leased else None,
            thread=created.thread,
            queue=created.queue,
        )
        rows = [_row(e) for e in (created, *then)]
        self._runs[created.run_id] = _Run(record, rows)
        self._number(created.run_id, 1, len(rows))
        self._changes.fire()
        return Lease(created.run_id, lease_owner, 1, expires_at) if lease_owner else None

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        status: RunStatus | None = None,
        consumed_signals: Sequence[int] = (),
        wake_at: datetime | None = None,
    ) -> int:
        rows = [_row(e) for e in events]
        run = self._run(run_id)
        record = run.record
        if record.last_seq != expected_seq or record.epoch != epoch:
            raise ConcurrencyError(
                stale_message(run_id, (record.last_seq, record.epoch), expected_seq, epoch)
            )
        self._number(run_id, len(run.rows) + 1, len(rows))
        run.rows.extend(rows)
        run.record = replace(
            record,
            last_seq=record.last_seq + len(rows),
            updated_at=events[-1].at if events else record.updated_at,
            status=status or record.status,
            wake_at=wake_at,
        )
        self._consume(run_id, consumed_signals)
        self._changes.fire()
        return run.record.last_seq

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        start = max(after_seq, 0)
        events = decode_many(self._run(run_id).rows[start:])
        return [StoredEvent(run_id, start + i, e) for i, e in enumerate(events, start=1)]

    def _number(self, run_id: str, first_seq: int, count: int) -> None:
        """Give events `first_seq`… of the run the next global positions."""
        for seq in range(first_seq, first_seq + count):
            self._last_position += 1
            self._log.append((self._last_position, run_id, seq))

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        start = bisect.bisect_right(self._log, (after, "\uffff", 1 << 62))
        found: list[tuple[int, StoredEvent]] = []
        for position, run_id, seq in self._log[start:]:
            if len(found) >= limit:
                break
            (event,) = decode_many(self._runs[run_id].rows[seq - 1 : seq])
            found.append((position, StoredEvent(run_id, seq, event)))
        return found

    async def last_position(self) -> int:
        return self._last_position

    async def get_run(self, run_id: str) -> RunRecord:
        return self._run(run_id).record

    async def list_runs(
        self,
        *,
        statuses: Sequence[RunStatus] | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        after: str | None = None,
        thread: str | None = None,
    ) -> list[RunRecord]:
        return self._page(statuses, workflow_name, limit, after, thread)

    async def list_threads(self, *, limit: int = 100) -> list[ThreadRecord]:
        threads: dict[str, list[RunRecord]] = {}
        for record in self._page(None, None, len(self._runs), None):  # newest first
            if record.thread is not None:
                threads.setdefault(record.thread, []).append(record)
        found = [ThreadRecord(t, len(runs), runs[0]) for t, runs in threads.items()]
        found.sort(key=lambda t: (t.last_run.created_at, t.thread), reverse=True)
        return found[: max(limit, 0)]

    def _page(
        self,
        statuses: Sequence[str] | None,
        workflow_name: str | None,
        limit: int,
        after: str | None,
        thread: str | None = None,
    ) -> list[RunRecord]:
        records = sorted(
            (r.record for r in self._runs.values()),
            key=lambda r: (r.created_at, r.run_id),
            reverse=True,
        )
        if after is not None:
            cursor = self._run(after).record
            records = [r for r in records if (r.created_at, r.run_id) < (cursor.created_at, after)]
        if statuses is not None:
            records = [r for r in records if r.status in statuses]
        if workflow_name is not None:
            records = [r for r in records if r.workflow_name == workflow_name]
        if thread is not None:
            records = [r for r in records if r.thread == thread]
        return records[: max(limit, 0)]

    async def wait_for_events(
        self, run_id: str, *, after_seq: int, timeout_seconds: float
    ) -> list[StoredEvent]:
        read = partial(self.read, run_id, after_seq=after_seq)
        return await events_or_wait(read, self._token, self._changes.wait, timeout_seconds)

    async def wait_for_change(self, *, timeout_seconds: float) -> bool:
        return await self._changes.wait(self._changes.generation, timeout_seconds)

    def _token(self) -> int:
        return self._changes.generation

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        run = self._run(run_id)
        now = self._clock.now()
        holder = run.record.owner
        if not lease_is_takeable(holder, run.record.lease_expires_at, owner, now):
            raise LeaseHeldError(run_id, holder or "")
        return self._take(run, owner, now + timedelta(seconds=ttl_seconds))

    def _take(self, run: _Run, owner: str, expires_at: datetime) -> Lease:
        epoch, holder = run.record.epoch + 1, run.record.owner
        run.record = replace(run.record, owner=owner, epoch=epoch, lease_expires_at=expires_at)
        self._changes.fire()
        return Lease(run.record.run_id, owner, epoch, expires_at, taken_from(holder, owner))

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        run = self._run(lease.run_id)
        if (run.record.owner, run.record.epoch) != (lease.owner, lease.epoch):
            raise ConcurrencyError(lost_lease_message(lease, run.record.owner, run.record.epoch))
        expires_at = self._clock.now() + timedelta(seconds=ttl_seconds)
        run.record = replace(run.record, lease_expires_at=expires_at)
        self._changes.fire()
        return replace(lease, expires_at=expires_at)

    async def release_lease(self, lease: Lease) -> None:
        run = self._runs.get(lease.run_id)
        if run and (run.record.owner, run.record.epoch) == (lease.owner, lease.epoch):
            run.record = replace(run.record, owner=None, lease_expires_at=None)
            self._changes.fire()

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        ttl_seconds: float,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        now = self._clock.now()
        signalled = {s.run_id for s, consumed in self._signals.values() if not consumed}
        found = []
        for run in self._runs.values():
            record = run.record
            due = record.wake_at is not None and record.wake_at <= now
            reason = claim_reason(record.status, due=due, signalled=record.run_id in signalled)
            live = not lease_is_free(record.owner, record.lease_expires_at, now)
            if reason is None or live or (queues is not None and record.queue not in queues):
                continue
            overdue = due and record.status not in TERMINAL_STATUSES
            since = record.wake_at if overdue and record.wake_at else record.created_at
            found.append(((since, record.created_at, record.run_id), run, reason))
        found.sort(key=lambda item: item[0])
        expires_at = now + timedelta(seconds=ttl_seconds)
        return [
            Claim(self._take(run, owner, expires_at), reason)
            for _, run, reason in found[: max(limit, 0)]
        ]

    # -- signals and retention ------------------------------------------------------------------

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        self._run(run_id)
        self._last_signal_id += 1
        signal_id = self._last_signal_id
        stored_payload = json.loads(json.dumps(payload))
        signal = Signal(signal_id, run_id, kind, stored_payload, self._clock.now())
        self._signals[signal_id] = (signal, False)
        self._changes.fire()
        return signal_id

    async def pending_signals(self, run_id: str) -> list[Signal]:
        self._run(run_id)
        return [s for s, consumed in self._signals.values() if s.run_id == run_id and not consumed]

    async def prune(
        self,
        *,
        finished_before: datetime | None = None,
        statuses: Sequence[RunStatus] = ("succeeded", "failed", "cancelled"),
        dry_run: bool = False,
    ) -> list[RunRecord]:
        wanted = check_prunable(statuses)
        now = self._clock.now()
        signalled = {s.run_id for s, consumed in self._signals.values() if not consumed}
        doomed = [
            record
            for record in self._page(wanted, None, len(self._runs), None)
            if (finished_before is None or record.updated_at < finished_before)
            and record.run_id not in signalled
            and lease_is_free(record.owner, record.lease_expires_at, now)
        ]
        if not dry_run:
            self._delete({record.run_id for record in doomed})
        return doomed

    def _delete(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            del self._runs[run_id]
        if run_ids:  # positions are never reused: the counter stays where it is
            self._log = [entry for entry in self._log if entry[1] not in run_ids]
        for signal_id, (signal, _) in list(self._signals.items()):
            if signal.run_id in run_ids:
                del self._signals[signal_id]
        if run_ids:
            self._changes.fire()

    async def check_writable(self) -> None:
        return None  # this process's own memory

    async def close(self) -> None:
        return None

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    def _consume(self, run_id: str, signal_ids: Sequence[int]) -> None:
        for signal_id in signal_ids:
            entry = self._signals.get(signal_id)
            if entry and entry[0].run_id == run_id:
                self._signals[signal_id] = (entry[0], True)
