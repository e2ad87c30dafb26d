"""People in the loop: a step held before it starts until a person approves, edits or rejects it.

A step with `approval:` (`required`, or a condition) is asked about once, just before its first
attempt would start (`gate`); a plan step with `confirm: true` is asked about each plan version
it makes. Both are one record, `RunState.approvals[step_id]`, set by `approval.requested` and
cleared by `approval.granted|edited|rejected|withdrawn` (or by the step finishing otherwise).
Runs recorded before this model hold `plan.approved`/`plan.rejected`: they still fold, and a
plan awaiting confirmation without a request is asked about by the next turn (`plan_requests`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from podium.core import events as ev
from podium.core import taint, tool_approvals
from podium.core.joins import make_ready, tidy_ready
from podium.core.render import RenderError, render_step
from podium.core.state import Approval, RunState, StepState, StepStatus, require_step
from podium.errors import InvalidTransitionError, UsageError
from podium.spec.answers import answer_problem
from podium.spec.expr import ExpressionError, evaluate, truthy
from podium.spec.model import HumanStep, PlanStep, StepBase, TimeoutDefault
from podium.spec.template import parse_condition

# fields an edit cannot change: they shape the run's graph or decide whether it is asked
FIXED_FIELDS = frozenset({"id", "kind", "needs", "join", "when", "approval"})
INPUT_CHARS = 2000  # a string field longer than this is cut in what a person is shown
# how a step fits the graph, not what it does: left out of what a person is shown
_NOT_INPUT = frozenset({"approval", "when", "join", "on_failure"})


# ------------------------------------------------------------------------------- asking


def gate(state: RunState, step: StepState, now: datetime) -> ev.Event | None:
    """`approval.requested` for a step that must be approved before its first attempt (or a
    failure when its `approval:` condition cannot be evaluated); None when it may start."""
    if isinstance(step.spec, HumanStep):
        return _ask(state, step, now)
    if step.approved or step.attempts > 0 or step.requeued:
        return None
    condition, reason = step.spec.approval, None
    if condition == "required":
        reason = "approval: required"
    elif condition is not None:
        try:
            asked = truthy(evaluate(parse_condition(condition), state.template_context(step.id)))
        except ExpressionError as exc:
            return ev.StepFailed(
                at=now, step_id=step.id, attempt=0, error=f"approval: {exc}", error_type="condition"
            )
        reason = f"approval: {condition}" if asked else None
    if reason is None and (rule := policy_rule(state, step)) is not None:
        reason = f"policy: {rule}"
    if reason is None and state.policy.rule("untrusted") and not step.spec.allow_untrusted:
        found = taint.splice(state, step)
        reason = taint.reason(*found) if found is not None else None
    if reason is None:
        return None
    return ev.ApprovalRequested(
        at=now, step_id=step.id, input=step_input(state, step.spec), reason=reason
    )


def policy_rule(state: RunState, step: StepState) -> str | None:
    """The rule of the run's policy that holds `step` for a person; a plan's child counts as
    planner-generated (`planned_*` rules)."""
    parent = state.steps.get(step.parent) if step.parent is not None else None
    planned = parent is not None and isinstance(parent.spec, PlanStep)
    return state.policy.rule_for(step.spec, planned=planned)


def _ask(state: RunState, step: StepState, now: datetime) -> ev.Event:
    """A human step asks its question (its prompt rendered now), or fails when it cannot be."""
    spec = step.spec
    assert isinstance(spec, HumanStep)
    try:
        rendered = render_step(state, spec)
    except RenderError as exc:
        return ev.StepFailed(
            at=now, step_id=step.id, attempt=0, error=str(exc), error_type="template"
        )
    assert isinstance(rendered, HumanStep)
    asked = {"prompt": rendered.prompt, "input": _jsonable(rendered.input)}
    return ev.ApprovalRequested(at=now, step_id=step.id, subject="answer", input=asked)


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def deadlines(state: RunState) -> list[datetime]:
    """When each human step waiting with a `timeout` stops waiting."""
    found = []
    for approval in state.approvals.values():
        timeout = state.steps[approval.step_id].spec.timeout
        if approval.subject == "answer" and timeout is not None:
            found.append(approval.since + timedelta(seconds=timeout))
    return found


def timeouts(state: RunState, now: datetime) -> list[ev.Event]:
    """A human step not answered within its `timeout`: it fails, or takes its default."""
    events: list[ev.Event] = []
    for approval in list(state.approvals.values()):
        spec = state.steps[approval.step_id].spec
        if approval.subject != "answer" or spec.timeout is None:
            continue
        if approval.since + timedelta(seconds=spec.timeout) > now:
            continue
        assert isinstance(spec, HumanStep)
        sid = spec.id
        events.append(ev.ApprovalWithdrawn(at=now, step_id=sid, reason="timeout"))
        if isinstance(spec.on_timeout, TimeoutDefault):
            meta = {"answered_by": "on_timeout.default"}
            output = spec.on_timeout.default
            events.append(ev.StepSucceeded(at=now, step_id=sid, output=output, meta=meta))
        else:
            error = f"no answer within {spec.timeout:g}s (on_timeout: fail)"
            events.append(
                ev.StepFailed(at=now, step_id=sid, attempt=0, error=error, error_type="timeout")
            )
    return events


def step_input(state: RunState, spec: StepBase) -> dict[str, Any]:
    """The step's own fields as its attempt would get them (templates rendered); unrendered
    when a template cannot be rendered yet (the attempt will fail on it)."""
    try:
        rendered = render_step(state, spec)
    except RenderError:
        rendered = spec
    shown = rendered.model_dump(mode="json", exclude_unset=True, exclude={"id", "needs"})
    return {k: _cut(v) for k, v in shown.items() if k not in _NOT_INPUT}


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > INPUT_CHARS:
        return value[: INPUT_CHARS - 1] + "…"
    return value


def plan_requests(state: RunState, now: datetime) -> list[ev.ApprovalRequested]:
    """A plan step whose new plan awaits confirmation is asked about (once per version)."""
    return [
        ev.ApprovalRequested(
            at=now,
            step_id=sid,
            subject="plan",
            input={"plan": record.versions[-1]},
            version=len(record.versions),
            reason="plan: confirm",
        )
        for sid, record in state.plans.items()
        if record.awaiting and sid not in state.approvals and _waits(state, sid)
    ]


def _waits(state: RunState, step_id: str) -> bool:
    """A plan step still waiting on its plan (one stopped meanwhile keeps a stale flag)."""
    return state.steps[step_id].status is StepStatus.WAITING


def withdrawals(state: RunState, now: datetime) -> list[ev.ApprovalWithdrawn]:
    """Approvals on steps that lost an `any`/`quorum` race: nobody needs to decide them."""
    return [
        ev.ApprovalWithdrawn(at=now, step_id=sid, reason="lost_race")
        for sid in sorted(state.losers)
        if sid in state.approvals
    ]


# ------------------------------------------------------------------------------- folding


def requested(state: RunState, e: ev.ApprovalRequested) -> None:
    step = state.steps[e.step_id]
    state.approvals[e.step_id] = Approval(
        e.step_id, e.subject, dict(e.input), e.at, e.version, e.reason
    )
    step.status = StepStatus.WAITING
    state.running.discard(e.step_id)  # an agent's held tool call ends its attempt's run
    tidy_ready(state)


def granted(state: RunState, step: StepState, edits: dict[str, Any] | None) -> None:
    """A step approved (with `edits` replacing its fields): it is ready to start."""
    state.approvals.pop(step.id, None)
    if edits:
        step.spec = edited_spec(step.spec, edits)
        state.specs_changed()
    step.approved = True
    make_ready(state, step)


def edited_spec(spec: StepBase, edits: dict[str, Any]) -> StepBase:
    """The step with `edits` replacing its fields, validated like the step itself.
    UsageError (one line) saying what to fix."""
    fixed = sorted(FIXED_FIELDS & set(edits))
    if fixed:
        raise UsageError(
            f"an edit of step {spec.id} cannot change {', '.join(fixed)}; edit only its input "
            "fields (e.g. run, args, prompt, content, url)"
        )
    try:
        return type(spec).model_validate({**spec.model_dump(exclude_unset=True), **edits})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the step"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UsageError(
            f"the edited step {spec.id} is not valid: {where}: {first['msg']}{more}; "
            "nothing was recorded"
        ) from None


# ------------------------------------------------------------------------------- deciding


def pending(state: RunState) -> list[Approval]:
    """What waits for a person in the run, in workflow order (a plan awaiting confirmation in a
    run recorded before approvals existed included)."""
    found = dict(state.approvals)
    for sid, record in state.plans.items():
        if record.awaiting and sid not in found and _waits(state, sid):
            plan = record.versions[-1] if record.versions else {}
            since = state.steps[sid].started_at or state.created_at
            found[sid] = Approval(sid, "plan", {"plan": plan}, since, len(record.versions))
    return sorted(found.values(), key=lambda a: state.steps[a.step_id].index)


def awaiting(state: RunState, step_id: str | None) -> Approval:
    """The approval a decision is about: `step_id`'s, or the only one. A finished or stopping
    run cannot be decided: InvalidTransitionError saying what to do instead."""
    waiting = {a.step_id: a for a in pending(state)}
    stale = [sid for sid, record in state.plans.items() if record.awaiting and sid not in waiting]
    if not waiting and stale and (step_id is None or step_id in stale):
        require_open(state, stale[0])  # a plan left waiting when the run stopped: say how to reopen
    if step_id is not None:
        step = require_step(state, step_id)
        if step_id not in waiting:
            raise InvalidTransitionError(
                f"step {step_id} is not awaiting approval (it is {step.status})",
                run_id=state.run_id,
                step_id=step_id,
            )
        found = waiting[step_id]
    elif len(waiting) != 1:
        which = ", ".join(waiting) if waiting else "none"
        raise InvalidTransitionError(
            f"run {state.run_id} has {len(waiting)} steps awaiting approval ({which}); "
            + ("name the step" if waiting else "nothing to approve"),
            run_id=state.run_id,
        )
    else:
        found = next(iter(waiting.values()))
    require_open(state, found.step_id)
    return found


def require_open(state: RunState, step_id: str) -> None:
    if state.outcome is None and state.stopping is None:
        return
    rid = state.run_id
    if state.outcome is None:
        raise InvalidTransitionError(
            f"run {rid} is stopping ({state.stopping}); nothing on it can be approved or "
            "rejected; wait for it to finish, then reopen it with `podium retry`",
            run_id=rid,
        )
    reopen = _step_to_reopen(state, step_id)
    how = f"`podium retry {rid} {reopen}`" if reopen else f"`podium retry {rid} STEP`"
    raise InvalidTransitionError(
        f"run {rid} is {state.outcome}, so nothing on it can be approved or rejected; reopen "
        f"it first with {how}, then decide what it waits on",
        run_id=rid,
    )


def _step_to_reopen(state: RunState, step_id: str) -> str | None:
    """A failed step (what failed the run), else the plan step, else any step that can be
    retried."""
    failed = next((s.id for s in state.steps.values() if s.status is StepStatus.FAILED), None)
    if failed is not None:
        return failed
    if state.steps[step_id].status in _REOPENS:
        return step_id
    return next((s.id for s in state.steps.values() if s.status in _REOPENS), None)


_REOPENS = frozenset(
    {StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED, StepStatus.SKIPPED}
)


def approve_event(
    state: RunState,
    step_id: str | None,
    now: datetime,
    *,
    plan: dict[str, Any] | None = None,
    edits: dict[str, Any] | None = None,
    answer: tuple[Any] | None = None,
) -> ev.ApprovalGranted | ev.ApprovalEdited:
    """`approval.granted` (for a human step with its `answer`, checked), or `approval.edited`
    with the edited plan or fields (checked here too: a signal whose edit or answer does not
    fit is refused, not folded)."""
    found = awaiting(state, step_id)
    sid = found.step_id
    if found.subject == "answer" or answer is not None:
        return _answered(state, found, answer, now)
    if found.subject == "plan":
        if edits:
            raise UsageError(f"step {sid} awaits a plan; edit a plan with --edit PLAN.json")
        if plan is None:
            return ev.ApprovalGranted(at=now, step_id=sid, version=found.version)
        version = len(state.plans[sid].versions) + 1
        return ev.ApprovalEdited(at=now, step_id=sid, input={"plan": plan}, version=version)
    if plan is not None:
        raise UsageError(f"step {sid} is not a plan step; edit its fields with --edit or --set")
    if found.subject == tool_approvals.SUBJECT:  # edits are the held call's arguments
        return tool_approvals.approve_event(found, edits, now)
    if not edits:
        return ev.ApprovalGranted(at=now, step_id=sid)
    edited_spec(state.steps[sid].spec, edits)
    return ev.ApprovalEdited(at=now, step_id=sid, input=dict(edits))


def _answered(
    state: RunState, found: Approval, answer: tuple[Any] | None, now: datetime
) -> ev.ApprovalGranted:
    sid, rid = found.step_id, state.run_id
    spec = state.steps[sid].spec
    if not isinstance(spec, HumanStep):
        raise UsageError(
            f"step {sid} asks for no answer; approve it with `podium approve {rid} {sid}`"
        )
    if answer is None:
        raise UsageError(f"step {sid} asks a question; answer it: podium answer {rid} {sid} VALUE")
    problem = answer_problem(spec.input, answer[0])
    if problem is not None:
        raise UsageError(f"that does not answer step {sid}: {problem}; nothing was recorded")
    return ev.ApprovalGranted(at=now, step_id=sid, value=answer[0])


def reject_event(
    state: RunState, step_id: str | None, now: datetime, reason: str
) -> ev.ApprovalRejected:
    found = awaiting(state, step_id)
    return ev.ApprovalRejected(at=now, step_id=found.step_id, reason=reason, version=found.version)
