"""An in-process event store with the SQLite store's semantics: for tests, demos and fakes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.core.events import Event, RunCreated, decode_many, encode
from podium.errors import ConcurrencyError, LeaseHeldError, RunExistsError, RunNotFoundError
from podium.store._sql import lease_is_takeable, lost_lease_message, stale_message
from podium.store.base import (
    TERMINAL_STATUSES,
    Lease,
    RunRecord,
    RunStatus,
    Signal,
    SignalKind,
    StoredEvent,
)


@dataclass(slots=True)
class _Run:
    record: RunRecord
    rows: list[tuple[str, bytes | str]] = field(default_factory=list)
    lease_expires_at: datetime | None = None


class MemoryEventStore:
    """Events are kept encoded, as a database keeps them, so what reads back is what SQLite gives.

    No method awaits inside, so concurrent tasks never interleave within one: no lock is needed.
    """

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._signals: dict[int, tuple[Signal, bool]] = {}
        self._last_signal_id = 0

    async def create_run(self, created: RunCreated, *, workflow_name: str) -> None:
        if created.run_id in self._runs:
            raise RunExistsError(created.run_id)
        record = RunRecord(
            run_id=created.run_id,
            workflow_name=workflow_name,
            status="pending",
            created_at=created.at,
            updated_at=created.at,
            last_seq=1,
            owner=None,
            epoch=0,
        )
        self._runs[created.run_id] = _Run(record, [(created.kind, encode(created))])

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        status: RunStatus | None = None,
        consumed_signals: Sequence[int] = (),
    ) -> int:
        rows: list[tuple[str, bytes | str]] = [(e.kind, encode(e)) for e in events]
        run = self._run(run_id)
        record = run.record
        if record.last_seq != expected_seq or record.epoch != epoch:
            raise ConcurrencyError(
                stale_message(run_id, (record.last_seq, record.epoch), expected_seq, epoch)
            )
        run.rows.extend(rows)
        run.record = replace(
            record,
            last_seq=record.last_seq + len(rows),
            updated_at=events[-1].at if events else record.updated_at,
            status=status or record.status,
        )
        self._consume(run_id, consumed_signals)
        return run.record.last_seq

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        start = max(after_seq, 0)
        events = decode_many(self._run(run_id).rows[start:])
        return [StoredEvent(run_id, start + i, e) for i, e in enumerate(events, start=1)]

    async def get_run(self, run_id: str) -> RunRecord:
        return self._run(run_id).record

    async def list_runs(
        self, *, statuses: Sequence[RunStatus] | None = None, limit: int = 100
    ) -> list[RunRecord]:
        records = [r.record for r in self._runs.values()]
        if statuses is not None:
            records = [r for r in records if r.status in statuses]
        records.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return records[:limit]

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        run = self._run(run_id)
        now = datetime.now(UTC)
        holder = run.record.owner
        if not lease_is_takeable(holder, run.lease_expires_at, owner, now):
            raise LeaseHeldError(run_id, holder or "")
        run.record = replace(run.record, owner=owner, epoch=run.record.epoch + 1)
        run.lease_expires_at = now + timedelta(seconds=ttl_seconds)
        return Lease(run_id, owner, run.record.epoch, run.lease_expires_at)

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        run = self._run(lease.run_id)
        if (run.record.owner, run.record.epoch) != (lease.owner, lease.epoch):
            raise ConcurrencyError(lost_lease_message(lease, run.record.owner, run.record.epoch))
        run.lease_expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        return replace(lease, expires_at=run.lease_expires_at)

    async def release_lease(self, lease: Lease) -> None:
        run = self._runs.get(lease.run_id)
        if run and (run.record.owner, run.record.epoch) == (lease.owner, lease.epoch):
            run.record = replace(run.record, owner=None)
            run.lease_expires_at = None

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        self._run(run_id)
        self._last_signal_id += 1
        signal_id = self._last_signal_id
        stored_payload = json.loads(json.dumps(payload))
        signal = Signal(signal_id, run_id, kind, stored_payload, datetime.now(UTC))
        self._signals[signal_id] = (signal, False)
        return signal_id

    async def pending_signals(self, run_id: str) -> list[Signal]:
        self._run(run_id)
        return [s for s, consumed in self._signals.values() if s.run_id == run_id and not consumed]

    async def prune(self, *, finished_before: datetime) -> int:
        doomed = {
            run_id
            for run_id, run in self._runs.items()
            if run.record.status in TERMINAL_STATUSES and run.record.updated_at < finished_before
        }
        for run_id in doomed:
            del self._runs[run_id]
        for signal_id, (signal, _) in list(self._signals.items()):
            if signal.run_id in doomed:
                del self._signals[signal_id]
        return len(doomed)

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
