"""The JSON documents of the engine read API: a run's listing record, a run's full state, a step
and an event. The CLI's `--json` and the HTTP API print exactly these (layer L5: they read core
state and store records; the edges format them, never reshape them).

Instants are ISO 8601 strings with their UTC offset, or null. The shapes:

run (one row of `podium runs --json`, from the store's listing record)::

    {"run_id": str, "workflow": str, "status": STATUS, "created_at": ISO, "updated_at": ISO,
     "wake_at": ISO | null}

show (`podium show RUN --json`; also what `run`, `resume`, `retry`, `skip`, `plan`, `approve`
and `reject` print with --json when they finish)::

    {"run_id": str, "workflow": str, "status": STATUS, "wake_at": ISO | null,
     "error": str | null, "created_at": ISO, "updated_at": ISO | null,
     "tokens": int, "cost_usd": float,
     "plans": {plan step id: [plan version, ...]},
     "steps": [step, ...]}                                  # in workflow order, plan children last

step::

    {"id": str, "kind": str, "status": STEP_STATUS, "attempts": int,
     "started_at": ISO | null, "finished_at": ISO | null,
     "output": any JSON | null, "truncated": bool, "error": str | null, "reason": str | null,
     "tokens": int, "cost_usd": float}

event (one line of `podium events RUN --json`)::

    {"run_id": str, "seq": int, "kind": str, "at": ISO, ...the event's own fields}

STATUS is pending | running | waiting | succeeded | failed | cancelled: `waiting` means parked
(for a person, or for a timer when `wake_at` says until when). STEP_STATUS is pending | ready |
running | waiting | retrying | interrupted | succeeded | failed | skipped | cancelled. `wake_at`
is when a parked run will wake by itself (a retry backoff, a timer), from the store's record;
null when nothing will wake it (it waits for a person, it is not parked, or it has finished).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from podium.core.state import RunState, StepState
from podium.store.base import TERMINAL_STATUSES, RunRecord, RunStatus, StoredEvent

__all__ = [
    "event_document",
    "iso",
    "run_document",
    "run_status",
    "show_document",
    "step_document",
    "wake_at",
]


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def wake_at(record: RunRecord | None) -> datetime | None:
    """When the parked run of `record` wakes by itself; None if nothing will wake it."""
    if record is None or record.status in TERMINAL_STATUSES:
        return None
    return record.wake_at


def run_status(state: RunState, record: RunRecord | None) -> RunStatus:
    """The run's status from its events (a retry's backoff is `waiting` there too), except that
    the store's `waiting` wins over `running`: a driver parks a run in the store, with its
    wake-up, only when nothing of it runs."""
    status = cast(RunStatus, state.status)
    if status == "running" and record is not None and record.status == "waiting":
        return "waiting"
    return status


def run_document(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": record.workflow_name,
        "status": record.status,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "wake_at": iso(wake_at(record)),
    }


def step_document(step: StepState) -> dict[str, Any]:
    return {
        "id": step.id,
        "kind": step.spec.kind,  # type: ignore[attr-defined]
        "status": str(step.status),
        "attempts": step.attempts,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "output": step.output,
        "truncated": step.truncated,
        "error": step.error,
        "reason": step.reason,
        "tokens": step.tokens,
        "cost_usd": round(step.cost_usd, 6),
    }


def show_document(state: RunState, record: RunRecord | None) -> dict[str, Any]:
    """The full state of a run; `record` (its listing row) adds what only the store knows."""
    return {
        "run_id": state.run_id,
        "workflow": state.workflow.name,
        "status": run_status(state, record),
        "wake_at": iso(wake_at(record)),
        "error": state.completed_error,
        "created_at": iso(state.created_at),
        "updated_at": iso(state.updated_at),
        "tokens": state.tokens,
        "cost_usd": round(state.cost_usd, 6),
        "plans": {sid: plan.versions for sid, plan in state.plans.items()},
        "steps": [step_document(step) for step in state.steps.values()],
    }


def event_document(stored: StoredEvent) -> dict[str, Any]:
    """run_id, seq, kind, then the event's own fields (`at` among them)."""
    fields = stored.event.model_dump(mode="json")
    kind = fields.pop("kind")
    return {"run_id": stored.run_id, "seq": stored.seq, "kind": kind, **fields}
