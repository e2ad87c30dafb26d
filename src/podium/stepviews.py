"""The document of one step in full (`podium show RUN STEP --json`, the shape `step detail` in
podium/views.py): its step document, its rendered input, and from the run's events every try,
model call, tool call and progress report. Layer L5, beside views."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from podium.core import events as ev
from podium.core import loops
from podium.core.approvals import pending
from podium.core.children import children_document
from podium.core.render import RenderError, render_step
from podium.core.state import RunState, StepState, require_step
from podium.spec.model import ShellStep
from podium.store.base import StoredEvent
from podium.views import (
    feedback_entries,
    iso,
    reused_from,
    seconds_between,
    step_document,
)


def step_detail_document(
    state: RunState, step_id: str, events: Iterable[StoredEvent]
) -> dict[str, Any]:
    """Everything about one step: its document, its rendered input, and from the run's events
    every try, model call, tool call and progress report. StepNotFoundError if it has none."""
    step = require_step(state, step_id)
    mine = [e.event for e in events if _concerns(e.event, step_id)]
    rendered, render_error = _rendered_input(state, step)
    return {
        **step_document(step),
        "parent": step.parent,
        "iteration": loops.iteration(state, step),
        "needs": list(step.spec.needs),
        "reused_from": reused_from(state, step_id),
        "child_runs": children_document(state).get(step_id, []),  # a workflow step's
        "duration_seconds": seconds_between(step.started_at, step.finished_at),
        "input": rendered,
        "input_error": render_error,
        "meta": step.meta,
        "sandbox": shell_sandbox(state, step),
        "skip_message": next(
            (e.message or None for e in reversed(mine) if isinstance(e, ev.StepSkipped)), None
        ),
        "tries": _tries(mine, step_id),
        "approval": held_for(state, step_id),
        "model_calls": _model_calls(mine),
        "tool_calls": _tool_calls(mine),
        "progress": [
            {"at": iso(e.at), "message": e.message, "fraction": e.fraction}
            for e in mine
            if isinstance(e, ev.StepProgress)
        ],
        "feedback": feedback_entries(state.feedback.get(step_id, [])),
        "approval_reason": next(
            (e.reason for e in reversed(mine) if isinstance(e, ev.ApprovalRequested)), None
        ),
    }


def shell_sandbox(state: RunState, step: StepState) -> str | None:
    """A shell step's sandbox, whether or not it has run: "off" when the step (`sandbox:
    false`) or the run's policy opted out, else "on"; None for other kinds."""
    if not isinstance(step.spec, ShellStep):
        return None
    ran_without = (step.meta or {}).get("sandbox") is False
    on = step.spec.sandbox and state.policy.sandbox.enabled and not ran_without
    return "on" if on else "off"


def held_for(state: RunState, step_id: str) -> dict[str, Any] | None:
    """What the step waits on a person for (see `approval` above), or None: for an agent's held
    tool call, `input` is `{tool, arguments, call_id, server, schema}`."""
    found = next((a for a in pending(state) if a.step_id == step_id), None)
    if found is None or state.outcome is not None:
        return None
    return {
        "step_id": found.step_id,
        "subject": found.subject,
        "since": iso(found.since),
        "version": found.version,
        "input": found.input,
        "reason": found.reason,
    }


def _concerns(event: ev.Event, step_id: str) -> bool:
    if isinstance(event, ev.RunResumed):
        return step_id in event.requeued or step_id in event.interrupted
    return getattr(event, "step_id", None) == step_id


def _rendered_input(state: RunState, step: StepState) -> tuple[dict[str, Any] | None, str | None]:
    """The step's templated fields as its attempts got them; None before it ever started."""
    if step.started_at is None:
        return None, None
    try:
        spec = render_step(state, step.spec)
    except RenderError as exc:
        return None, str(exc)
    fields = {name: getattr(spec, name) for name in spec.templated}
    return {k: v for k, v in fields.items() if v not in (None, "", {}, [])}, None


_ENDINGS: dict[type[ev.Event], str] = {
    ev.StepSucceeded: "succeeded",
    ev.PlanGenerated: "planned",
    ev.StepRetrying: "retrying",
    ev.StepFailed: "failed",
    ev.StepCancelled: "cancelled",
}


def _tries(events: Sequence[ev.Event], step_id: str) -> list[dict[str, Any]]:
    tries: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for e in events:
        if isinstance(e, ev.StepStarted):
            current = _try(e)
            tries.append(current)
        elif current is not None and (outcome := _ending(e, step_id)) is not None:
            _end_try(current, e, outcome)
            current = None
    return tries


def _try(e: ev.StepStarted) -> dict[str, Any]:
    return {
        "attempt": e.attempt,
        "generation": e.generation,
        "started_at": iso(e.at),
        "finished_at": None,
        "duration_seconds": None,
        "outcome": "running",
        "error": None,
        "error_type": None,
        "retry_at": None,
    }


def _ending(e: ev.Event, step_id: str) -> str | None:
    if isinstance(e, ev.ApprovalRequested) and e.subject == "tool":
        return "held"  # a tool call waits for a person; the same attempt goes on when decided
    if isinstance(e, ev.RunResumed):
        return "interrupted" if step_id in e.interrupted else "requeued"
    if isinstance(e, ev.StepLost):
        return "requeued" if e.requeued else "interrupted"
    return _ENDINGS.get(type(e))


def _end_try(entry: dict[str, Any], e: ev.Event, outcome: str) -> None:
    started = datetime.fromisoformat(entry["started_at"])
    entry.update(
        finished_at=iso(e.at),
        duration_seconds=seconds_between(started, e.at),
        outcome=outcome,
        error=getattr(e, "error", None),
        error_type=getattr(e, "error_type", None),
        retry_at=iso(getattr(e, "retry_at", None)),
    )


def _model_calls(events: Sequence[ev.Event]) -> list[dict[str, Any]]:
    calls, attempt = [], 0
    for e in events:
        if isinstance(e, ev.StepStarted):
            attempt = e.attempt
        elif isinstance(e, ev.ModelCalled):
            fields = e.model_dump(mode="json", exclude={"kind", "step_id", "at"})
            calls.append({"at": iso(e.at), "attempt": attempt, **fields})
    return calls


def _tool_calls(events: Sequence[ev.Event]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    open_calls: dict[str, dict[str, Any]] = {}
    attempt = 0
    for e in events:
        if isinstance(e, ev.StepStarted):
            attempt = e.attempt
        elif isinstance(e, ev.ToolStarted):
            entry = _tool_entry(attempt, e.call_id, e.tool, e.arguments, started_at=e.at)
            open_calls[e.call_id] = entry
            calls.append(entry)
        elif isinstance(e, ev.ToolCalled):
            entry = open_calls.pop(e.call_id or "", {})
            if not entry:
                entry = _tool_entry(attempt, e.call_id, e.tool, e.arguments or {}, started_at=None)
                calls.append(entry)
            entry.update(
                finished_at=iso(e.at),
                duration_seconds=e.latency_seconds,
                ok=e.ok,
                result=e.result,
                error=e.error,
            )
    return calls


def _tool_entry(
    attempt: int, call_id: str | None, tool: str, arguments: dict[str, Any], *, started_at: Any
) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "attempt": attempt,
        "tool": tool,
        "arguments": arguments,
        "started_at": iso(started_at),
        "finished_at": None,
        "duration_seconds": None,
        "ok": None,
        "result": None,
        "error": None,
    }
