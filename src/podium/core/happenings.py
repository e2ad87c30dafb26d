"""What reaches a run's driver between two turns, as plain data: finished and cancelled attempts,
reports from running attempts, control signals, a take-over. And what a turn asks the runtime to
launch. All of it is picklable, so an attempt may run in another process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from pydantic import BaseModel

from podium.core import events as ev
from podium.core import tool_approvals
from podium.errors import ReportError
from podium.spec.model import StepBase

ReportKind = Literal[
    "model.called",
    "tool.started",
    "tool.called",
    "agent.routed",
    "breaker.changed",
    "step.progress",
    "tool.approval_needed",
]
REPORT_KINDS: Final[tuple[str, ...]] = get_args(ReportKind)
REPORT_EVENTS: Final[Mapping[str, type[BaseModel]]] = {
    "model.called": ev.ModelCalled,
    "tool.started": ev.ToolStarted,
    "tool.called": ev.ToolCalled,
    "agent.routed": ev.AgentRouted,
    "breaker.changed": ev.BreakerChanged,
    "step.progress": ev.StepProgress,
    "tool.approval_needed": tool_approvals.ToolAsk,  # recorded as approval.requested (tool)
}
_SET_BY_THE_RUN = frozenset({"kind", "at", "step_id"})


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """A finished attempt: its output, or its error and whether a retry may help. `lost`: the
    process that ran it died before it said how it ended (a Ray worker killed, its node gone;
    `error` says what happened): the step is in flight as after a take-over, requeued with the
    same idempotency key if it is idempotent, else interrupted."""

    step_id: str
    attempt: int
    output: Any = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False
    error_type: str = "error"
    lost: bool = False


@dataclass(frozen=True, slots=True)
class AttemptCancelled:
    """A running attempt ended because the turn asked to cancel it, for `reason`."""

    step_id: str
    reason: ev.CancelReason


@dataclass(frozen=True, slots=True)
class Report:
    """Something a running attempt can know and the run records: one of `REPORT_KINDS`.
    Build it with `make_report`, which refuses anything else."""

    step_id: str
    kind: ReportKind
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ControlSignal:
    """A person's request (cancel, retry, skip, approve, reject) read from the store's inbox."""

    id: int
    kind: str
    payload: Mapping[str, Any]


MAX_RECOVERIES: Final = 5
"""Takeovers from dead drivers in a row a run gets before it is dead-lettered (core/recovery.py)."""


@dataclass(frozen=True, slots=True)
class TakenOver:
    """A new driver took the run over; `stopped` names steps whose leftover processes it killed.
    `crashed`: the previous driver died holding the lease (it did not give the run back); after
    more than `max_recoveries` such takeovers in a row the run is dead-lettered."""

    stopped: tuple[str, ...] = ()
    crashed: bool = False
    max_recoveries: int = MAX_RECOVERIES


@dataclass(frozen=True, slots=True)
class ChildEnded:
    """A `workflow` step's child run ended, as its committed state says: how, with what outputs
    (every top-level step's output by id), and what it spent. `budget` names the child's budget
    that stopped it, if one did. Read from the child's signal or from the store."""

    step_id: str
    child_run_id: str
    outcome: str
    output: Any = None
    error: str | None = None
    budget: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    steps: int = 0
    loop_iterations: int = 0


Happening = AttemptOutcome | AttemptCancelled | Report | ControlSignal | TakenOver | ChildEnded


@dataclass(frozen=True, slots=True)
class Launch:
    """An attempt the turn started: the step as rendered against committed outputs, and what its
    executor is given. Launch it only after the turn's events are committed."""

    step_id: str
    attempt: int
    generation: int
    idempotency_key: str
    step: StepBase
    upstream: Mapping[str, Any] = field(default_factory=dict)
    history: Mapping[str, Any] = field(default_factory=dict)
    tool_gate: tool_approvals.ToolGate | None = None  # which tool calls wait for a person


def make_report(step_id: str, kind: str, data: Mapping[str, Any]) -> Report:
    """Check a report where it is made, so the code that made it hears what is wrong."""
    event_type = REPORT_EVENTS.get(kind)
    if event_type is None:
        raise ReportError(
            f"step {step_id}: an attempt cannot report {kind!r}; it may report only "
            f"{', '.join(REPORT_KINDS)} (a step's result is what it returns or raises)"
        )
    forged = _SET_BY_THE_RUN & set(data)
    if forged:
        raise ReportError(
            f"step {step_id}: a {kind} report may not set {', '.join(sorted(forged))}; the run "
            "fills those in"
        )
    report = Report(step_id, kind, dict(data))  # type: ignore[arg-type]
    try:
        report_event(report, at=_PROBE_TIME)
    except ValueError as exc:
        raise ReportError(f"step {step_id}: malformed {kind} report: {_first_error(exc)}") from exc
    return report


def report_event(report: Report, *, at: Any) -> ev.Event:
    """The event a report becomes. ValueError if its kind or data do not fit the closed set."""
    event_type = REPORT_EVENTS.get(report.kind)
    if event_type is None or _SET_BY_THE_RUN & set(report.data):
        raise ValueError(f"{report.kind!r} is not a report an attempt may make")
    if report.kind == "tool.approval_needed":
        return tool_approvals.request_event(report.step_id, report.data, at)
    payload = {**report.data, "at": at, "step_id": report.step_id}
    return cast(ev.Event, event_type.model_validate(payload))


def _first_error(exc: ValueError) -> str:
    text = str(exc).splitlines()
    return "; ".join(line.strip() for line in text[1:3]) or str(exc)


_PROBE_TIME = "2000-01-01T00:00:00Z"
