"""The fold of a run's events into its state: `apply(state, event)` and `replay(events)`.

`apply` is deterministic and does no I/O. For speed it updates the state in place (a run of 10,000
steps must not be copied per event) and keeps the incremental indexes the scheduler reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from podium.core import approvals, children, loops, plans, recovery, tool_approvals
from podium.core import events as ev
from podium.core.graph import build_graph
from podium.core.joins import make_ready, propagate, reopen, tidy_ready
from podium.core.state import Feedback, ForkInfo, PlanState, RunState, StepState, StepStatus
from podium.spec.model import HistoryMessage, Workflow
from podium.spec.policy import recorded as recorded_policy


def new_state(created: ev.RunCreated, workflow: Workflow | None = None) -> RunState:
    """The state right after `run.created`. Pass `workflow` to skip re-validating the document."""
    wf = workflow if workflow is not None else Workflow.model_validate(created.workflow)
    graph = build_graph(wf)
    steps = {
        step.id: StepState(spec=step, index=i, rank=graph.rank[step.id])
        for i, step in enumerate(wf.steps)
    }
    state = RunState(
        run_id=created.run_id,
        workflow=wf,
        inputs=dict(created.inputs),
        workspace=created.workspace,
        workspace_path=Path(created.workspace),
        agents_dir=created.agents_dir,
        default_model=created.default_model,
        config=created.config,
        policy=recorded_policy(created.policy),
        thread=_thread(created),
        parent=created.parent,
        depth=created.depth,
        queue=created.queue,
        created_at=created.at,
        graph=graph,
        steps=steps,
        updated_at=created.at,
        unfinished=len(steps),
    )
    for step in steps.values():
        if not step.spec.needs:
            make_ready(state, step)
    return state


def _thread(created: ev.RunCreated) -> dict[str, Any] | None:
    """What `run.created` says of the thread the run answers on (None: not a thread's run)."""
    if created.thread is None:
        return None
    return {
        "id": created.thread,
        "message": created.message,
        "routing": created.routing,
        "on_busy": created.on_busy,
    }


def replay(events: Iterable[ev.Event], workflow: Workflow | None = None) -> RunState:
    iterator = iter(events)
    first = next(iterator, None)
    if not isinstance(first, ev.RunCreated):
        raise ValueError("a run's event log must start with run.created")
    state = new_state(first, workflow)
    for event in iterator:
        apply(state, event)
    return state


def apply(state: RunState, event: ev.Event) -> RunState:
    """Fold one event into the state (in place) and return it."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise ValueError(f"event kind {event.kind} cannot be applied to a live run")
    handler(state, event)
    state.seq += 1
    if not isinstance(event, ev.StepFeedback):  # a remark on the run, not a change of it
        state.updated_at = event.at
    return state


# ---------------------------------------------------------------------------------------- handlers


def _on_started(state: RunState, e: ev.StepStarted) -> None:
    step = state.steps[e.step_id]
    if step.started_at is None:
        state.steps_started += 1
    if step.status is StepStatus.RETRYING:
        state.retrying.pop(step.id, None)
    if not step.requeued or (step.attempts, step.generation) != (e.attempt, e.generation):
        step.transcript = None  # a new attempt talks afresh; a requeued one continues
    step.status = StepStatus.RUNNING
    step.attempts = e.attempt
    step.generation = e.generation
    step.requeued = False
    step.started_at = e.at
    step.finished_at = None
    state.running.add(step.id)
    tidy_ready(state)
    if loops.is_loop(step):  # no attempt runs: the loop waits on its body's children
        loops.started(state, step)


def _on_succeeded(state: RunState, e: ev.StepSucceeded) -> None:
    step = state.steps[e.step_id]
    step.output, step.truncated, step.meta = e.output, e.truncated, e.meta
    step.error = step.error_type = None
    _finish(state, step, StepStatus.SUCCEEDED, e.at)
    propagate(state, step, "ok")


def _on_retrying(state: RunState, e: ev.StepRetrying) -> None:
    step = state.steps[e.step_id]
    state.running.discard(step.id)
    step.status = StepStatus.RETRYING
    step.error, step.error_type, step.retry_at = e.error, e.error_type, e.retry_at
    state.retrying[step.id] = e.retry_at


def _on_failed(state: RunState, e: ev.StepFailed) -> None:
    _fail(state, state.steps[e.step_id], e.error, e.error_type, e.at)


def _fail(state: RunState, step: StepState, error: str, error_type: str, at: datetime) -> None:
    """A step failed for good. A plan's child is its plan's business (replan or fail the plan),
    not the run's."""
    step.error, step.error_type = error, error_type
    _finish(state, step, StepStatus.FAILED, at)
    if step.spec.allow_failure:
        propagate(state, step, "ok")
        return
    if step.parent is None:
        state.failures.append(step.id)
        policy = step.spec.on_failure or state.workflow.on_failure
        if policy == "fail_fast" and state.stopping is None:
            state.stopping = "fail_fast"
    propagate(state, step, "bad")


def _on_skipped(state: RunState, e: ev.StepSkipped) -> None:
    step = state.steps[e.step_id]
    was_failed = step.status is StepStatus.FAILED
    step.reason = e.reason
    step.error = e.message or step.error
    state.doomed.pop(step.id, None)
    _finish(state, step, StepStatus.SKIPPED, e.at)
    if was_failed:
        reopen(state, step, skip=True)
        loops.reopened(state, e.at)
    else:
        propagate(state, step, "bad" if e.reason == "upstream_failed" else "skip")


def _on_cancelled(state: RunState, e: ev.StepCancelled) -> None:
    step = state.steps[e.step_id]
    step.reason = e.reason
    _finish(state, step, StepStatus.CANCELLED, e.at)
    propagate(state, step, "bad")


def _on_forked(state: RunState, e: ev.RunForked) -> None:
    """A fork takes over its parent's recorded plans, then the parent's finished steps (in
    dependency order) through the same transitions as if they had finished here."""
    for plan_id, doc in e.plans.items():
        _restore_plan(state, state.steps[plan_id], doc)
    loops.restore(state, e.loops)
    for step_id, done in e.reused.items():
        _reuse(state, step_id, done, e.at)
    state.fork = ForkInfo(e.parent_run_id, e.from_step, tuple(e.reused))


def _restore_plan(state: RunState, step: StepState, doc: dict[str, Any]) -> None:
    """The plan step waits on its recorded children, as it did in the parent: no planner call."""
    record = state.plans[step.id] = PlanState(
        versions=list(doc["versions"]),
        failures=dict(doc.get("failures", {})),
        replans=int(doc.get("replans", 0)),
    )
    step.status = StepStatus.WAITING
    for child in doc["children"]:
        plans.add_child(state, step, plans.child_spec(child))
    record.children = [child["id"] for child in doc["children"]]
    record.current = list(doc["current"])
    tidy_ready(state)


def _reuse(state: RunState, step_id: str, done: ev.ReusedStep, at: datetime) -> None:
    if done.status == "succeeded":
        out = ev.StepSucceeded(
            at=at, step_id=step_id, output=done.output, truncated=done.truncated, meta=done.meta
        )
        _on_succeeded(state, out)
    elif done.status == "failed":
        step = state.steps[step_id]
        _fail(state, step, done.error or "failed", done.error_type or "error", at)
    elif done.status == "skipped":
        reason: Any = done.reason or "manual"
        _on_skipped(state, ev.StepSkipped(at=at, step_id=step_id, reason=reason))
    else:
        cancelled: Any = done.reason or "replaced"
        _on_cancelled(state, ev.StepCancelled(at=at, step_id=step_id, reason=cancelled))
    state.steps[step_id].error = done.error


def _on_cancel_requested(state: RunState, e: ev.RunCancelRequested) -> None:
    state.stopping = "cancel"
    state.cancel_reason = e.reason or None


def _on_completed(state: RunState, e: ev.RunCompleted) -> None:
    state.outcome = e.outcome
    state.completed_error = e.error


def _on_retry_requested(state: RunState, e: ev.StepRetryRequested) -> None:
    step = state.steps[e.step_id]
    step.generation += 1
    step.attempts = 0
    step.requeued = False
    reopen(state, step, skip=False)
    loops.reopened(state, e.at)


def _on_model_called(state: RunState, e: ev.ModelCalled) -> None:
    tokens = e.input_tokens + e.output_tokens
    step = state.steps[e.step_id]
    step.tokens += tokens
    step.cost_usd += e.cost_usd
    state.tokens += tokens
    state.cost_usd += e.cost_usd
    if e.reply is not None:
        _transcribe(step, {"kind": "model", "turn": e.turn, "reply": e.reply})


def _on_tool_started(state: RunState, e: ev.ToolStarted) -> None:
    entry = {"kind": "tool_started", "call_id": e.call_id, "tool": e.tool, "safe": e.safe}
    _transcribe(state.steps[e.step_id], entry)


def _on_tool_called(state: RunState, e: ev.ToolCalled) -> None:
    if e.call_id is not None:
        entry = {"kind": "tool", "call_id": e.call_id, "result": e.result, "ok": e.ok}
        _transcribe(state.steps[e.step_id], entry)


def _transcribe(step: StepState, entry: dict[str, Any]) -> None:
    """Keep what the running attempt said and did, so a resumed attempt continues from it."""
    if step.status is not StepStatus.RUNNING:
        return
    if step.transcript is None:
        step.transcript = []
    step.transcript.append(entry)


def _noted(state: RunState, e: ev.Event) -> None:
    """Events that are records for people (routing, breakers, progress, refused signals) and
    change no step."""


def _on_plan_generated(state: RunState, e: ev.PlanGenerated) -> None:
    plans.generated(state, state.steps[e.step_id], e.plan, e.at)


def _on_plan_approved(state: RunState, e: ev.PlanApproved) -> None:
    step = state.steps[e.step_id]
    record = state.plans[e.step_id]
    state.approvals.pop(e.step_id, None)
    if e.plan is not None:
        record.versions.append(e.plan)
    plans.adopt(state, step, record.versions[-1], e.at)


def _on_plan_rejected(state: RunState, e: ev.PlanRejected) -> None:
    step = state.steps[e.step_id]
    state.plans[e.step_id].awaiting = False
    _fail(state, step, f"plan rejected: {e.reason or 'no reason given'}", "rejected", e.at)


def _on_feedback(state: RunState, e: ev.StepFeedback) -> None:
    entry = Feedback(rating=e.rating, comment=e.comment, who=e.who, at=e.at)
    state.feedback.setdefault(e.step_id, []).append(entry)


def _on_approval_granted(state: RunState, e: ev.ApprovalGranted) -> None:
    if tool_approvals.folded(state, e):  # an agent's held tool call: its attempt goes on
        return
    asked = state.approvals.get(e.step_id)
    if asked is not None and asked.subject == "answer":  # a human step: the answer is its output
        _on_succeeded(state, ev.StepSucceeded(at=e.at, step_id=e.step_id, output=e.value))
        return
    _approved(state, state.steps[e.step_id], None, e.at)


def _on_approval_edited(state: RunState, e: ev.ApprovalEdited) -> None:
    if tool_approvals.folded(state, e):
        return
    _approved(state, state.steps[e.step_id], dict(e.input), e.at)


def _approved(
    state: RunState, step: StepState, edited: dict[str, Any] | None, at: datetime
) -> None:
    """A plan is adopted (as edited: a new version); a step becomes ready (with its edits)."""
    record = state.plans.get(step.id)
    if record is not None and record.awaiting:
        state.approvals.pop(step.id, None)
        if edited is not None:
            record.versions.append(edited["plan"])
        plans.adopt(state, step, record.versions[-1], at)
        return
    approvals.granted(state, step, edited)


def _on_approval_rejected(state: RunState, e: ev.ApprovalRejected) -> None:
    if tool_approvals.folded(state, e):  # the model hears of it; the step is not failed
        return
    step = state.steps[e.step_id]
    state.approvals.pop(step.id, None)
    record = state.plans.get(step.id)
    reason = e.reason or "no reason given"
    if record is not None and record.awaiting:
        record.awaiting = False
        _fail(state, step, f"plan rejected: {reason}", "rejected", e.at)
    else:
        _fail(state, step, f"rejected: {reason}", "rejected", e.at)


def _on_approval_withdrawn(state: RunState, e: ev.ApprovalWithdrawn) -> None:
    state.approvals.pop(e.step_id, None)
    record = state.plans.get(e.step_id)
    if record is not None:
        record.awaiting = False  # nobody decides that plan any more (skipped, lost its race)


def _on_budget_exceeded(state: RunState, e: ev.BudgetExceeded) -> None:
    if state.stopping is None:
        state.stopping = "budget"
    state.budget_error = e.message


def _on_thread_caught_up(state: RunState, e: ev.ThreadCaughtUp) -> None:
    """The answer step of a queued thread run sees the thread as it is when its turn comes."""
    step = state.steps[e.step_id]
    history = [HistoryMessage.model_validate(said) for said in e.history]
    step.spec = step.spec.model_copy(update={"history": history})
    state.specs_changed()


_HANDLERS: dict[type, Callable[[RunState, Any], None]] = {
    ev.ModelCalled: _on_model_called,
    ev.AgentRouted: _noted,
    ev.BreakerChanged: _noted,
    ev.ToolStarted: _on_tool_started,
    ev.ToolCalled: _on_tool_called,
    ev.StepProgress: _noted,
    ev.SignalRefused: _noted,
    ev.BudgetExceeded: _on_budget_exceeded,
    ev.PlanGenerated: _on_plan_generated,
    ev.PlanApproved: _on_plan_approved,
    ev.PlanRejected: _on_plan_rejected,
    ev.ApprovalRequested: approvals.requested,
    ev.ApprovalGranted: _on_approval_granted,
    ev.ApprovalEdited: _on_approval_edited,
    ev.ApprovalRejected: _on_approval_rejected,
    ev.ApprovalWithdrawn: _on_approval_withdrawn,
    ev.StepStarted: _on_started,
    ev.StepSucceeded: _on_succeeded,
    ev.StepRetrying: _on_retrying,
    ev.StepFailed: _on_failed,
    ev.StepSkipped: _on_skipped,
    ev.StepCancelled: _on_cancelled,
    ev.RunResumed: recovery.resumed,
    ev.RunDeadLettered: recovery.dead_lettered,
    ev.RunRevived: recovery.revived,
    ev.StepLost: recovery.lost_step,
    ev.RunForked: _on_forked,
    ev.RunCancelRequested: _on_cancel_requested,
    ev.RunCompleted: _on_completed,
    ev.StepRetryRequested: _on_retry_requested,
    ev.StepFeedback: _on_feedback,
    ev.ThreadCaughtUp: _on_thread_caught_up,
    ev.LoopIterated: loops.iterated,
    ev.ChildStarted: children.started,
    ev.ChildCompleted: children.completed,
}


# ------------------------------------------------------------------------------------- transitions


def _finish(state: RunState, step: StepState, status: StepStatus, at: datetime) -> None:
    was_terminal = step.terminal
    state.running.discard(step.id)
    state.retrying.pop(step.id, None)
    state.losers.discard(step.id)
    state.approvals.pop(step.id, None)
    step.status = status
    step.finished_at = at
    step.retry_at = None
    step.transcript = None
    if not was_terminal:
        state.unfinished -= 1
    recovery.reset(state)
    tidy_ready(state)
    state.settled_plans.pop(step.id, None)
    if step.parent is not None:
        plans.child_settled(state, step)
    loops.settled(state, step)
