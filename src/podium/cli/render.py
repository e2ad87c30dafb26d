"""Human formatting for the CLI: `show`, `runs` and `events` as Rich tables and plain lines, plus
the end-of-run summary. Pure functions of states, records and events; the JSON documents are
`podium.views`'."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from podium.core import loops
from podium.core.events import StepFeedback
from podium.core.state import RunState, StepState, StepStatus
from podium.core.tool_approvals import held_call
from podium.pictures import duration_text
from podium.spec.plan import item_summary
from podium.store.base import RunRecord, StoredEvent
from podium.views import abandoned, cancel_reason, feedback_counts, run_status, wake_at

STATUS_STYLES: dict[str, str] = {
    "pending": "dim",
    "ready": "cyan",
    "running": "bold blue",
    "retrying": "yellow",
    "interrupted": "bold magenta",
    "waiting": "bold magenta",
    "dead": "bold red reverse",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim yellow",
    "cancelled": "red",
}
COUNT_ORDER = (
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "interrupted",
    "running",
    "retrying",
    "waiting",
    "ready",
    "pending",
)
OUTPUT_CELL_CHARS = 60
DETAIL_CHARS = 120


# ------------------------------------------------------------------------------ small formats


def clock_time(at: datetime | None) -> str:
    """`12:00:01` in local time ('' for None)."""
    return at.astimezone().strftime("%H:%M:%S") if at is not None else ""


def stamp(at: datetime | None) -> str:
    """`2024-05-01 12:00:01` in local time ('' for None)."""
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def duration(seconds: float | None) -> str:
    """`15ms`, `4.2s`, `3m05s`, `2h01m` ('' for None): `podium.pictures.duration_text`."""
    return "" if seconds is None else duration_text(seconds)


def span(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def shorten(value: Any, limit: int = OUTPUT_CELL_CHARS) -> str:
    """A one-line preview of a value: text as is, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def counts(state: RunState) -> str:
    """`3 succeeded, 1 skipped` in a fixed order."""
    tally = Counter(str(s.status) for s in state.steps.values())
    return ", ".join(f"{tally[name]} {name}" for name in COUNT_ORDER if tally[name])


# ------------------------------------------------------------------------------------ show


def show_renderable(state: RunState, record: RunRecord) -> RenderableType:
    """The human `show`: a header of run facts, then one row per step."""
    rows = loops.display_order(state)  # a loop's iterations under it
    parts: list[RenderableType] = [show_header(state, record), _steps_table(rows)]
    for step_id, links in state.children.items():
        parts.append(Text(f"child runs of step {step_id}:"))
        parts.append(Text("\n".join(f"  {c.run_id}  {c.status}" for c in links)))
    for step_id, plan in state.plans.items():
        parts.append(Text(f"plans of step {step_id}:"))
        parts.append(Text("\n".join(_plan_lines(plan.versions, len(plan.versions)))))
    if state.feedback:
        parts += [Text("feedback", style="bold"), _feedback_table(state)]
    return Group(*parts)


def _feedback_table(state: RunState) -> Table:
    """One row per rated step: `build  up 2, down 1`; `podium show RUN STEP` lists each."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column()
    for step_id, notes in state.feedback.items():
        tally = feedback_counts(notes)
        grid.add_row(step_id, ", ".join(f"{rating} {n}" for rating, n in tally.items() if n))
    return grid


def show_header(state: RunState, record: RunRecord) -> Table:
    """The run's facts: id, workflow, status (and who drives it), times, counts, usage."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", state.run_id)
    grid.add_row("workflow", f"{state.workflow.name} (version {state.workflow.version})")
    grid.add_row("status", _status_cell(state, record))
    if (fork := state.fork) is not None:
        reused = f"{len(fork.reused)} steps reused"
        grid.add_row("forked", f"from {fork.parent_run_id} at {fork.from_step} ({reused})")
    if state.parent is not None:
        parent = state.parent
        where = f"step {parent['step_id']}, depth {state.depth}"
        grid.add_row("parent", f"{parent['run_id']} ({where})")
    if state.thread is not None:
        grid.add_row("thread", thread_text(state.thread))
        grid.add_row("message", shorten(state.thread.get("message") or ""))
    grid.add_row("created", stamp(state.created_at))
    grid.add_row("updated", stamp(state.updated_at))
    end = state.updated_at if state.outcome is not None else datetime.now(UTC)
    grid.add_row("duration", duration(span(state.created_at, end)))
    grid.add_row("steps", counts(state))
    if state.tokens or state.cost_usd:
        grid.add_row("usage", f"{state.tokens:,} tokens, ${state.cost_usd:.4f}")
    if state.completed_error:
        grid.add_row("error", Text(state.completed_error, style="red"))
    if (reason := cancel_reason(state)) is not None:
        grid.add_row("cancel reason", reason)
    if state.dead is not None:
        grid.add_row("dead-lettered", Text(state.dead, style="red"))
    return grid


def thread_text(thread: Mapping[str, Any]) -> str:
    """`T (agent A, chosen by rule 0 /pattern/)`: a thread's run, and how its agent was chosen."""
    routing = thread.get("routing") or {}
    by = str(routing.get("by"))
    how = {
        "rule": f"rule {routing.get('rule')} /{routing.get('pattern')}/",
        "router": f"the router {routing.get('router')}",
        "request": "--agent",
    }.get(by, by)
    return f"{thread['id']} (agent {routing.get('agent')}, chosen by {how})"


def waiting_until(record: RunRecord) -> str:
    """`  until 12:00:05` for a parked run that wakes by itself, else ''."""
    at = wake_at(record)
    return f"  until {clock_time(at)}" if at is not None else ""


def _status_cell(state: RunState, record: RunRecord) -> Text:
    status = run_status(state, record)
    text = styled(status)
    if status == "waiting":
        text.append(waiting_until(record))
    if abandoned(state, record):
        text.append(resume_hint(state.run_id), style="dim")
    elif status in ("running", "pending") and record.owner:
        text.append(f"  (driven by {record.owner})", style="dim")
    return text


def resume_hint(run_id: str) -> str:
    """What a run nobody drives needs (its driver was stopped: Ctrl-C, a crash)."""
    return f"  (nobody drives it; run `podium resume {run_id}`)"


def _steps_table(rows: Iterable[tuple[StepState, int]]) -> Table:
    """One row per step; a loop's children are indented under it (`depth`)."""
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for name in ("step", "kind", "status", "tries", "started", "finished", "took"):
        table.add_column(name, no_wrap=True)
    table.add_column("output / error", overflow="fold")
    for step, depth in rows:
        table.add_row(
            "  " * depth + step.id,
            step.spec.kind,  # type: ignore[attr-defined]
            styled(str(step.status)),
            str(step.attempts) if step.attempts else "",
            clock_time(step.started_at),
            clock_time(step.finished_at),
            duration(span(step.started_at, step.finished_at)),
            _result_cell(step),
        )
    return table


def _result_cell(step: StepState) -> Text:
    if step.status is StepStatus.SUCCEEDED and (ended := loops.ending(step)) is not None:
        return Text(f"{ended}: {shorten(step.output)}")
    if step.status is StepStatus.SUCCEEDED:
        text = Text(shorten(step.output) if step.output is not None else "")
        if step.truncated:
            text.append(" [truncated]", style="yellow")
        return text
    parts = [p for p in (step.reason, step.error) if p]
    return Text(shorten(": ".join(parts)) if parts else "", style="red")


# ------------------------------------------------------------------------------------ runs


def runs_table(records: Iterable[RunRecord], states: Mapping[str, RunState] | None = None) -> Table:
    """One row per run: its status, and from its state (when given) duration, steps and cost."""
    table = Table(show_edge=False, pad_edge=False)
    for name in ("run", "workflow", "status", "took", "steps", "cost", "created"):
        table.add_column(name, no_wrap=True, justify="right" if name == "cost" else "left")
    for r in records:
        state = (states or {}).get(r.run_id)
        status = styled(r.status if state is None else run_status(state, r))
        if r.status == "waiting":
            status.append(waiting_until(r))
        if state is not None and abandoned(state, r):
            status.append(resume_hint(r.run_id), style="dim")
        figures = _run_figures(state) if state is not None else ("", "", "")
        workflow = r.workflow_name
        if state is not None and state.parent is not None:
            workflow += f" (child of {state.parent['run_id']})"
        table.add_row(r.run_id, workflow, status, *figures, stamp(r.created_at))
    return table


def _run_figures(state: RunState) -> tuple[str, Text, str]:
    """`1m05s`, `4/6 done, 1 failed`, `$0.0123`."""
    end = state.updated_at if state.outcome is not None else datetime.now(UTC)
    tally = Counter(str(s.status) for s in state.steps.values())
    done = sum(1 for s in state.steps.values() if s.terminal)
    steps = Text(f"{done}/{len(state.steps)} done")
    if tally["failed"]:
        steps.append(f", {tally['failed']} failed", style="red")
    cost = f"${state.cost_usd:.4f}" if state.cost_usd else ""
    return duration(span(state.created_at, end)), steps, cost


# ---------------------------------------------------------------------------------- events


def event_line(stored: StoredEvent) -> str:
    """`seq  time  kind  step  details`; feedback reads `up by ann: "clear output"`."""
    fields = stored.event.model_dump(mode="json", exclude={"kind", "at"})
    step = fields.pop("step_id", "")
    details = "  ".join(f"{k}={shorten(v, DETAIL_CHARS)}" for k, v in fields.items() if v)
    if isinstance(stored.event, StepFeedback):
        details = feedback_text(stored.event.rating, stored.event.who, stored.event.comment)
    at = stored.event.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    return f"{stored.seq:>5}  {at}  {stored.event.kind:<21}  {step:<16}  {details}".rstrip()


def feedback_text(rating: str, who: str, comment: str | None) -> str:
    """`up by ann: "clear output"`."""
    said = f": {json.dumps(shorten(comment, DETAIL_CHARS), ensure_ascii=False)}" if comment else ""
    return f"{rating} by {who or 'someone'}{said}"


# --------------------------------------------------------------------------------- summary


def summary_lines(state: RunState) -> list[str]:
    """The end-of-run report: status, duration and counts, then what to do about it."""
    took = duration(span(state.created_at, state.updated_at))
    lines = [f"run {state.run_id} {state.status} after {took}: {counts(state)}"]
    if (reason := cancel_reason(state)) is not None:
        lines.append(f"  cancel reason: {reason}")
    for step in state.steps.values():
        if step.status is StepStatus.FAILED and not step.spec.allow_failure:
            lines.append(f"  step {step.id} failed: {shorten(step.error or '', DETAIL_CHARS)}")
            lines.append(f"    retry it with: podium retry {state.run_id} {step.id}")
    if sum(s.status is StepStatus.FAILED for s in state.steps.values()) > 1:
        lines.append(f"  retry every failed step with: podium retry {state.run_id} --all-failed")
    if state.status == "waiting" and state.live_children and not state.awaits_person:
        runs = ", ".join(link.run_id for link in state.live_children)
        lines.append(f"run {state.run_id} waits for its child runs: {runs}")
    elif state.status == "waiting":
        lines += _parked_lines(state) if state.awaits_person else _timer_lines(state)
    elif state.dead is not None:
        lines.append(f"run {state.run_id} is dead-lettered: {state.dead}")
    return lines


def _timer_lines(state: RunState) -> list[str]:
    """A run parked on a retry's backoff: nobody needs to act, it wakes by itself."""
    due = min(state.retrying.values(), default=None)
    until = f" until {clock_time(due)}" if due is not None else ""
    return [f"run {state.run_id} waits{until} to retry; it wakes by itself"]


def _held_call_lines(
    rid: str, step_id: str, asked: Mapping[str, Any], reason: str | None
) -> list[str]:
    why = f" ({reason})" if reason else ""
    return [
        f"  step {step_id} holds a call for approval{why}: {held_call(asked)}",
        f"    make it:         podium approve {rid} {step_id}",
        f"    change it first: podium approve {rid} {step_id} --set ARGUMENT=VALUE "
        "(or --edit ARGUMENTS.yaml)",
        f"    refuse it:       podium reject {rid} {step_id} --reason TEXT (the agent is told)",
    ]


def _parked_lines(state: RunState) -> list[str]:
    lines = [f"run {state.run_id} is waiting for a person:"]
    rid = state.run_id
    for step_id, approval in state.approvals.items():
        if approval.subject == "plan":
            continue
        if approval.subject == "answer":
            lines += [
                f"  step {step_id} asks: {shorten(approval.input.get('prompt'), DETAIL_CHARS)}",
                f"    answer it: podium answer {rid} {step_id} VALUE",
            ]
            continue
        if approval.subject == "tool":  # an agent's call, held before it is made
            lines += _held_call_lines(rid, step_id, approval.input, approval.reason)
            continue
        shown = {k: v for k, v in approval.input.items() if k != "kind"}
        why = f" ({approval.reason})" if approval.reason else ""
        lines += [
            f"  step {step_id} awaits approval{why}: {shorten(json.dumps(shown), DETAIL_CHARS)}",
            f"    run it:          podium approve {rid} {step_id}",
            f"    change it first: podium approve {rid} {step_id} --set FIELD=VALUE "
            "(or --edit FIELDS.yaml)",
            f"    refuse it:       podium reject {rid} {step_id} --reason TEXT",
        ]
    if len(state.approvals) > 1:
        lines.append(f"  all {len(state.approvals)} that wait: podium approvals {rid}")
    for step_id, record in state.plans.items():
        if record.awaiting:
            lines.append(f"  the plan of step {step_id} awaits approval:")
            lines += _plan_lines(record.versions[-1:], len(record.versions))
            lines += [
                f"    run it:          podium approve {state.run_id} {step_id}",
                f"    change it first: podium approve {state.run_id} {step_id} --edit PLAN.json",
                f"    refuse it:       podium reject {state.run_id} {step_id} --reason TEXT",
            ]
    for step_id in state.interrupted:
        lines += [
            f"  step {step_id} was interrupted (it has side effects and was in flight when its "
            "process stopped, so it was not re-run)",
            f"    run it again:        podium retry {state.run_id} {step_id}",
            f"    carry on without it: podium skip {state.run_id} {step_id}",
        ]
    if len(state.interrupted) > 1:
        lines += [
            f"  all {len(state.interrupted)} at once: podium retry {state.run_id} "
            f"--all-interrupted (or podium skip {state.run_id} --all-interrupted)"
        ]
    return lines


def _plan_lines(versions: list[dict[str, Any]], last: int) -> list[str]:
    lines = []
    for number, version in enumerate(versions, last - len(versions) + 1):
        lines.append(f"    plan version {number}: {version.get('summary') or ''}".rstrip())
        for item in version.get("steps", []):
            needs = f" (needs {', '.join(item['needs'])})" if item.get("needs") else ""
            who, what = item_summary(item)
            lines.append(f"      - {item.get('id')} [{who}]: {what}{needs}")
    return lines
