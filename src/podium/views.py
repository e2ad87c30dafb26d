"""The JSON documents of the engine read API: a run's listing record, a run's full state, a step
and an event. The CLI's `--json` and the HTTP API print exactly these (layer L5: they read core
state and store records; the edges format them, never reshape them).

Instants are ISO 8601 strings with their UTC offset, or null. The shapes:

run (one row of `podium runs --json`, from the store's listing record; `podium runs` also
reads each listed run's state and adds the figures after the `#`)::

    {"run_id": str, "workflow": str, "status": STATUS, "created_at": ISO, "updated_at": ISO,
     "wake_at": ISO | null,
     # with the run's state:
     "abandoned": bool,                 # unfinished and nobody drives it: resume it
     "duration_seconds": float, "steps": {"total": int, STEP_STATUS: int, ...},
     "tokens": int, "cost_usd": float,
     "parent": {"run_id": str, "step_id": str} | null}   # a `workflow` step's child run

show (`podium show RUN --json`; also what `run`, `resume`, `retry`, `skip`, `plan`, `approve`
and `reject` print with --json when they finish)::

    {"run_id": str, "workflow": str, "status": STATUS, "wake_at": ISO | null,
     "error": str | null, "cancel_reason": str | null, "created_at": ISO,
     "dead_reason": str | null,       # why the run was dead-lettered (status `dead`)
     "recoveries": int,               # takeovers from dead drivers in a row, so far
     "updated_at": ISO | null, "tokens": int, "cost_usd": float,
     "forked_from": {"run_id": str, "step": str, "reused": [str]} | null,
     "plans": {plan step id: [plan version, ...]},
     "loops": {loop step id: {"iterations": [[child id, ...], ...],   # `<loop>.<n>.<body id>`
                              "stopped": "until" | "max_iterations" | null}},
     "feedback": {step id: {"up": int, "down": int}},       # steps people rated (`feedback`)
     "approvals": [approval, ...],                          # what waits for a person
     "parent": {"run_id": str, "step_id": str} | null,     # a `workflow` step's child run
     "depth": int,                                          # 0 unless it is a child run
     "children": {workflow step id: [{"run_id": str, "generation": int,
                                      "status": "running" | OUTCOME, "error": str | null}]},
     "steps": [step, ...]}                                  # in workflow order, plan children last

approval (also `podium approvals --json`, with "run_id")::

    {"step_id": str, "subject": "step" | "plan" | "answer" | "tool", "since": ISO,
     "version": int | null,   # a tool's input: {tool, arguments, call_id, server, schema}
     "input": {field: rendered value} | {"plan": plan},   # what the person is asked
     "reason": str | null}   # why: "approval: required", "policy: planned_shell", "plan: confirm"

step::

    {"id": str, "kind": str, "status": STEP_STATUS, "attempts": int,
     "started_at": ISO | null, "finished_at": ISO | null,
     "output": any JSON | null, "truncated": bool, "error": str | null, "reason": str | null,
     "tokens": int, "cost_usd": float}

step detail (`podium show RUN STEP --json`): the step document, and from the run's events::

    {...step, "parent": str | null, "needs": [str], "duration_seconds": float | null,
     "iteration": int | null,                   # a loop's child: its iteration (1-based)
     "reused_from": str | null,                 # the parent run a fork took its result from
     "child_runs": [{"run_id", "generation", "status", "error"}],   # a workflow step's runs
     "input": {field: rendered value} | null,   # the templated fields (run, prompt, url, …) as
     "input_error": str | null,                 # rendered against the run's committed outputs
     "meta": {...} | null,                      # e.g. a shell step's exit_code, stderr_tail
     "sandbox": "on" | "off" | null,            # a shell step's: off when it or the policy opts out
     "skip_message": str | null,
     "tries": [{"attempt": int, "generation": int, "started_at": ISO, "finished_at": ISO | null,
                "duration_seconds": float | null, "outcome": TRY_OUTCOME,
                "error": str | null, "error_type": str | null, "retry_at": ISO | null}],
     "approval": approval | null,              # what it waits on a person for, if it does
     "model_calls": [{"at": ISO, "attempt": int, "turn": int | null, "model": str,
                      "agent": str | null, "input_tokens": int, "output_tokens": int,
                      "cost_usd": float, "latency_seconds": float, "finish_reason": str | null,
                      "estimated": bool, "reply": {"content": str, "tool_calls": [...]} | null}],
     "tool_calls": [{"call_id": str | null, "attempt": int, "tool": str, "arguments": {...},
                     "started_at": ISO | null, "finished_at": ISO | null,
                     "duration_seconds": float | null, "ok": bool | null,   # null: in flight
                     "result": str | null, "error": str | null}],
     "progress": [{"at": ISO, "message": str, "fraction": float | null}],
     "feedback": [{"rating": "up" | "down", "comment": str | null, "who": str, "at": ISO}],
     "approval_reason": str | null}   # why a person was last asked to approve it

TRY_OUTCOME is running | succeeded | planned (a plan step's plan was made) | held (an agent's
tool call waits for a person; the same attempt goes on as a new try once it is decided) |
retrying (failed, tried again) | failed | cancelled | interrupted | requeued (its process
stopped; it ran again).

log entry (one line of `podium logs RUN --json`)::

    {"run_id": str, "seq": int, "at": ISO, "step_id": str, "stream": STREAM, "text": str}

STREAM is stdout | stderr (a shell step's: one line each from its log file, with "seq": null
and its "attempt"; where the file is not at hand, the stored output and the end of stderr) | text
(an agent's reply, one per model call) | tool (a call an agent made) | progress | error.

event (one line of `podium events RUN --json`)::

    {"run_id": str, "seq": int, "kind": str, "at": ISO, ...the event's own fields}

validation (`podium validate FILE --json`)::

    {"ok": bool, "workflow": str | null, "steps": int | null,
     "problems": [{"path": str, "message": str}], "warnings": [{"path": str, "message": str}]}

feedback (`podium feedback RUN STEP --json`)::

    {"run_id": str, "step_id": str, "rating": "up" | "down", "comment": str | null,
     "recorded": bool,          # false: it waits in the inbox for the run's busy driver
     "feedback": [feedback entry, ...]}

thread (one row of `podium threads --json`)::

    {"thread": str, "runs": int, "last_run_id": str, "status": STATUS,
     "last_message": str | null, "updated_at": ISO}

thread run (one row of `podium threads T --json`)::

    {"run_id": str, "status": STATUS, "agent": str | null, "message": str | null,
     "created_at": ISO}

STATUS is pending | running | waiting | succeeded | failed | cancelled: `waiting` means parked
(for a person, or for a timer when `wake_at` says until when). STEP_STATUS is pending | ready |
running | waiting | retrying | interrupted | succeeded | failed | skipped | cancelled (a step
`waiting` is a plan step whose children run, or one held for a person: see "approvals"). `wake_at`
is when a parked run will wake by itself (a retry backoff, a timer), from the store's record;
null when nothing will wake it (it waits for a person, it is not parked, or it has finished).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from podium.core import events as ev
from podium.core import loops
from podium.core.approvals import pending
from podium.core.children import children_document
from podium.core.state import Feedback, RunState, StepState
from podium.errors import Problem
from podium.store.base import (
    TERMINAL_STATUSES,
    RunRecord,
    RunStatus,
    StoredEvent,
    owner_is_dead,
)

if TYPE_CHECKING:
    from podium.runtime.threads import ThreadSummary

__all__ = [
    "abandoned",
    "cancel_reason",
    "event_document",
    "feedback_counts",
    "feedback_document",
    "feedback_entries",
    "iso",
    "log_entries",
    "run_document",
    "run_status",
    "seconds_between",
    "show_document",
    "step_document",
    "thread_document",
    "thread_run_document",
    "validation_document",
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
    the store's `waiting` or `pending` wins over `running`: a driver parks a run in the store,
    with its wake-up, only when nothing of it runs, and a run nobody has started yet (`run
    --detach`, a control engine's, a queued thread's) is `pending` there."""
    status = cast(RunStatus, state.status)
    if status == "running" and record is not None and record.status in ("waiting", "pending"):
        return record.status
    return status


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def abandoned(state: RunState, record: RunRecord | None) -> bool:
    """Unfinished, not parked, and no live process drives it: only `podium resume` moves it."""
    if record is None or run_status(state, record) not in ("running", "pending"):
        return False
    return not record.owner or owner_is_dead(record.owner)


def cancel_reason(state: RunState) -> str | None:
    """What `cancel --reason` said, while the run stops on it or once it was cancelled."""
    if state.stopping == "cancel" or state.outcome == "cancelled":
        return state.cancel_reason
    return None


def forked_from(state: RunState) -> dict[str, Any] | None:
    """Where a forked run came from (`run.forked`): the parent run, the step, what it reused."""
    fork = state.fork
    if fork is None:
        return None
    return {"run_id": fork.parent_run_id, "step": fork.from_step, "reused": list(fork.reused)}


def reused_from(state: RunState, step_id: str) -> str | None:
    """The parent run whose result a forked run took over for this step, else None."""
    fork = state.fork
    return fork.parent_run_id if fork is not None and step_id in fork.reused else None


def run_document(record: RunRecord, state: RunState | None = None) -> dict[str, Any]:
    """The listing row; with the run's `state`, also its duration, step counts and usage."""
    document: dict[str, Any] = {
        "run_id": record.run_id,
        "workflow": record.workflow_name,
        "status": record.status if state is None else run_status(state, record),
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "wake_at": iso(wake_at(record)),
        "queue": record.queue,
    }
    if state is not None:
        end = state.updated_at if state.outcome is not None else datetime.now(UTC)
        tally = Counter(str(step.status) for step in state.steps.values())
        document.update(
            abandoned=abandoned(state, record),
            duration_seconds=seconds_between(state.created_at, end),
            steps={"total": len(state.steps), **dict(sorted(tally.items()))},
            tokens=state.tokens,
            cost_usd=round(state.cost_usd, 6),
            parent=state.parent,
        )
    return document


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
        "cancel_reason": cancel_reason(state),
        "dead_reason": state.dead,
        "recoveries": state.recoveries,
        "forked_from": forked_from(state),
        "thread": state.thread,  # a thread's run: {"id", "message", "routing", "on_busy"}
        "created_at": iso(state.created_at),
        "updated_at": iso(state.updated_at),
        "tokens": state.tokens,
        "cost_usd": round(state.cost_usd, 6),
        "plans": {sid: plan.versions for sid, plan in state.plans.items()},
        "loops": loops.summary(state),
        "feedback": {sid: feedback_counts(notes) for sid, notes in state.feedback.items()},
        "approvals": [
            {
                "step_id": a.step_id,
                "subject": a.subject,
                "since": iso(a.since),
                "version": a.version,
                "input": a.input,
                "reason": a.reason,
            }
            for a in (pending(state) if state.outcome is None else [])
        ],
        "parent": state.parent,
        "depth": state.depth,
        "children": children_document(state),
        "steps": [step_document(step) for step in state.steps.values()],
    }


def feedback_entries(notes: Iterable[Feedback]) -> list[dict[str, Any]]:
    """Each rating of one step, oldest first (see `step detail` above)."""
    return [
        {"rating": f.rating, "comment": f.comment, "who": f.who, "at": iso(f.at)} for f in notes
    ]


def feedback_counts(notes: Iterable[Feedback]) -> dict[str, int]:
    """`{"up": 2, "down": 1}`: how people rated one step."""
    tally = Counter(f.rating for f in notes)
    return {"up": tally["up"], "down": tally["down"]}


def log_entries(stored: StoredEvent) -> list[dict[str, Any]]:
    """What one event adds to the run's logs (see `log entry` above); most events add nothing."""
    e = stored.event
    step_id = getattr(e, "step_id", None)
    if step_id is None:
        return []
    head = {"run_id": stored.run_id, "seq": stored.seq, "at": iso(e.at), "step_id": step_id}
    return [{**head, "stream": stream, "text": text} for stream, text in _log_texts(e) if text]


def log_line_entry(
    run_id: str, step_id: str, attempt: int, record: dict[str, Any]
) -> dict[str, Any]:
    """One line of a shell step's log file as a log entry (`seq` null: it is not an event)."""
    at = record.get("at")
    when = iso(datetime.fromtimestamp(at, UTC)) if isinstance(at, int | float) else None
    stream = record.get("stream") if record.get("stream") in ("stdout", "stderr") else "stdout"
    return {
        "run_id": run_id,
        "seq": None,
        "at": when,
        "step_id": step_id,
        "attempt": attempt,
        "stream": stream,
        "text": record["text"],
    }


def _log_texts(e: ev.Event) -> list[tuple[str, str]]:
    if isinstance(e, ev.StepSucceeded) and e.meta is not None and "exit_code" in e.meta:
        stdout = e.output if isinstance(e.output, str | None) else json.dumps(e.output)
        return [("stdout", stdout or ""), ("stderr", str(e.meta.get("stderr_tail") or ""))]
    if isinstance(e, ev.ModelCalled) and e.reply is not None:
        return [("text", str(e.reply.get("content") or ""))]
    if isinstance(e, ev.ToolCalled):
        outcome = "ok" if e.ok else f"failed: {e.error}"
        return [("tool", f"{e.tool}({json.dumps(e.arguments or {})}) {outcome}")]
    if isinstance(e, ev.StepProgress):
        done = f"{e.fraction:.0%} " if e.fraction is not None else ""
        return [("progress", f"{done}{e.message}".strip())]
    if isinstance(e, ev.StepFailed | ev.StepRetrying | ev.StepLost):
        return [("error", f"attempt {e.attempt}: {e.error}")]
    return []


def event_document(stored: StoredEvent) -> dict[str, Any]:
    """run_id, seq, kind, then the event's own fields (`at` among them)."""
    fields = stored.event.model_dump(mode="json")
    kind = fields.pop("kind")
    return {"run_id": stored.run_id, "seq": stored.seq, "kind": kind, **fields}


def validation_document(
    workflow_name: str | None,
    steps: int | None,
    problems: Iterable[Problem],
    warnings: Iterable[Problem] = (),
) -> dict[str, Any]:
    """What a workflow's check found (see `validation` above)."""
    listed = [{"path": p.path, "message": p.message} for p in problems]
    return {
        "ok": not listed,
        "workflow": workflow_name,
        "steps": steps,
        "problems": listed,
        "warnings": [{"path": w.path, "message": w.message} for w in warnings],
    }


def feedback_document(
    run_id: str,
    step_id: str,
    rating: str,
    comment: str | None,
    *,
    recorded: bool,
    notes: Iterable[Feedback],
) -> dict[str, Any]:
    """A rating just given, and every rating of the step so far (see `feedback` above)."""
    return {
        "run_id": run_id,
        "step_id": step_id,
        "rating": rating,
        "comment": comment or None,
        "recorded": recorded,
        "feedback": feedback_entries(notes),
    }


def thread_document(summary: ThreadSummary) -> dict[str, Any]:
    """One thread's row, (see `thread` above)."""
    return {
        "thread": summary.thread,
        "runs": summary.runs,
        "last_run_id": summary.last_run_id,
        "status": summary.status,
        "last_message": summary.last_message,
        "updated_at": iso(summary.updated_at),
    }


def thread_run_document(record: RunRecord, state: RunState) -> dict[str, Any]:
    """One run of a thread: who answered and what was asked (see `thread run` above)."""
    said = state.thread or {}
    routing = said.get("routing") or {}
    return {
        "run_id": record.run_id,
        "status": record.status,
        "agent": routing.get("agent"),
        "message": said.get("message"),
        "created_at": iso(record.created_at),
    }
