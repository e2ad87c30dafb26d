"""Every state change of a run as a frozen, kind-tagged value; one TypeAdapter reads them all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SkipReason = Literal["condition", "manual", "upstream_skipped", "upstream_failed"]
CancelReason = Literal["run_cancelled", "fail_fast", "lost_race", "budget", "replaced"]
RunOutcome = Literal["succeeded", "failed", "cancelled"]


DEFAULT_QUEUE = "default"


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    at: datetime


class RunCreated(_Event):
    """The run's whole definition: replay needs nothing else."""

    kind: Literal["run.created"] = "run.created"
    run_id: str
    workflow: dict[str, Any]
    inputs: dict[str, Any] = Field(default_factory=dict)
    workspace: str
    agents_dir: str | None = None
    default_model: str | None = None
    # the project configuration it used: {"path", "digest", "model", "agents", "providers",
    # "mcp_servers"} (names only, never a secret value); None before there was one
    config: dict[str, Any] | None = None
    # the effective approval policy (`Policy.record()`: every rule resolved, the blocked
    # agents); None before policies existed: such a run folds with the defaults
    policy: dict[str, Any] | None = None
    # a thread's run (`podium ask`): the thread id, the new message, how its agent was chosen
    # ({"requested", "agent", "by", and "rule"/"pattern" or "router"}) and what busy thread
    # policy it was asked under ("reject", "queue", "interrupt")
    thread: str | None = None
    message: str | None = None
    routing: dict[str, Any] | None = None
    on_busy: str | None = None
    # a child run of a `workflow` step: {"run_id", "step_id"} of the parent; its nesting depth
    parent: dict[str, str] | None = None
    depth: int = 0
    # which workers may claim it (`podium worker --queue`); runs without one are on `default`
    queue: str = DEFAULT_QUEUE


class ReusedStep(BaseModel):
    """A parent run's finished step as a fork takes it over: its status and what it left."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Literal["succeeded", "failed", "skipped", "cancelled"] = "succeeded"
    output: Any = None
    truncated: bool = False
    meta: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None


class RunForked(_Event):
    """The run is a fork of `parent_run_id` from `from_step`: the steps in `reused` (in
    dependency order) are taken over as the parent finished them, never run here; `plans`
    holds the recorded plan of each plan step whose children are taken over ({"versions",
    "children": [child step documents], "current", "failures", "replans"}); `loops` the
    number of iterations of each loop step whose children are taken over (outer loops first)."""

    kind: Literal["run.forked"] = "run.forked"
    parent_run_id: str
    from_step: str
    reused: dict[str, ReusedStep] = Field(default_factory=dict)
    plans: dict[str, dict[str, Any]] = Field(default_factory=dict)
    loops: dict[str, int] = Field(default_factory=dict)


class RunResumed(_Event):
    """A new driver took the run over; in-flight steps were requeued (idempotent) or interrupted."""

    kind: Literal["run.resumed"] = "run.resumed"
    requeued: list[str] = Field(default_factory=list)
    interrupted: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)  # steps whose leftover processes were killed
    recovery: int = 0
    """How many times in a row the run was taken from a driver that died (its lease expired or
    its process was gone) without a step finishing in between; 0 when the last driver gave the
    run back (a drained worker, a closed engine)."""


class RunDeadLettered(_Event):
    """Taken over more than `max_recoveries` times in a row from drivers that died while these
    steps ran: the run stops here (its in-flight steps `interrupted`) until a person revives it
    (`podium retry RUN`, or a retry or skip of one of its steps) or cancels it."""

    kind: Literal["run.dead_lettered"] = "run.dead_lettered"
    reason: str
    recoveries: int
    interrupted: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)


class RunRevived(_Event):
    """A person brought a dead-lettered run back: it runs again with a fresh recovery count."""

    kind: Literal["run.revived"] = "run.revived"


class RunCancelRequested(_Event):
    kind: Literal["run.cancel_requested"] = "run.cancel_requested"
    reason: str = ""


class RunCompleted(_Event):
    kind: Literal["run.completed"] = "run.completed"
    outcome: RunOutcome
    error: str | None = None


class StepStarted(_Event):
    kind: Literal["step.started"] = "step.started"
    step_id: str
    attempt: int
    generation: int = 0


class StepSucceeded(_Event):
    kind: Literal["step.succeeded"] = "step.succeeded"
    step_id: str
    output: Any = None
    truncated: bool = False
    meta: dict[str, Any] | None = None


class StepLost(_Event):
    """The process running the attempt died before the attempt ended (`error` says how): like
    an in-flight step on take-over, it was `requeued` (idempotent: the same attempt and
    idempotency key run again) or else interrupted (it waits for `podium retry` or `skip`)."""

    kind: Literal["step.lost"] = "step.lost"
    step_id: str
    attempt: int
    error: str
    requeued: bool = False


class StepRetrying(_Event):
    """An attempt failed and another is parked until `retry_at`."""

    kind: Literal["step.retrying"] = "step.retrying"
    step_id: str
    attempt: int
    error: str
    error_type: str = "error"
    retry_at: datetime


class StepFailed(_Event):
    """An attempt failed and no retry is left (or the error is not retryable)."""

    kind: Literal["step.failed"] = "step.failed"
    step_id: str
    attempt: int
    error: str
    error_type: str = "error"


class StepSkipped(_Event):
    kind: Literal["step.skipped"] = "step.skipped"
    step_id: str
    reason: SkipReason
    message: str = ""


class StepCancelled(_Event):
    kind: Literal["step.cancelled"] = "step.cancelled"
    step_id: str
    reason: CancelReason


class ModelCalled(_Event):
    """One model call made by a step: what it cost, and (for an agent's turns) what the model
    replied, so a resumed step continues from it instead of asking again. Recorded as it
    happens, so budgets see it."""

    kind: Literal["model.called"] = "model.called"
    step_id: str
    model: str
    agent: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_seconds: float = 0.0
    finish_reason: str | None = None
    estimated: bool = False  # the provider gave no usage: the tokens were counted here
    turn: int | None = None
    reply: dict[str, Any] | None = None  # {"content": str, "tool_calls": [{id, name, arguments}]}


class AgentRouted(_Event):
    """A step's agent was swapped for a fallback because a circuit breaker is open."""

    kind: Literal["agent.routed"] = "agent.routed"
    step_id: str
    requested: str
    selected: str
    reason: str = ""


class BreakerChanged(_Event):
    """A circuit breaker (per model or per agent) changed state."""

    kind: Literal["breaker.changed"] = "breaker.changed"
    key: str
    from_status: Literal["closed", "open", "half_open"]
    to_status: Literal["closed", "open", "half_open"]
    reason: str = ""
    step_id: str | None = None


class ToolStarted(_Event):
    """An agent step is about to call a tool (committed before the call is made). `safe` says
    whether running it again is harmless (read-only or idempotent): after a crash mid-call, a
    safe call is made again, an unsafe one interrupts the step for a person."""

    kind: Literal["tool.started"] = "tool.started"
    step_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    safe: bool = False
    turn: int | None = None


class ToolCalled(_Event):
    """One tool call made by an agent step: which tool, whether it worked, how long it took,
    and the result the model was given (within the output cap)."""

    kind: Literal["tool.called"] = "tool.called"
    step_id: str
    tool: str
    ok: bool = True
    latency_seconds: float = 0.0
    error: str | None = None
    call_id: str | None = None
    arguments: dict[str, Any] | None = None
    result: str | None = None


class StepProgress(_Event):
    """A running step said how far it got (a message, and a fraction done when it knows one)."""

    kind: Literal["step.progress"] = "step.progress"
    step_id: str
    message: str = ""
    fraction: float | None = Field(default=None, ge=0.0, le=1.0)


class SignalRefused(_Event):
    """A control signal that no longer fit the run when its driver read it: consumed, not
    applied."""

    kind: Literal["signal.refused"] = "signal.refused"
    signal_id: int
    signal: str
    step_id: str | None = None
    reason: str


class BudgetExceeded(_Event):
    """A run budget was exceeded: the run stops, running steps are cancelled."""

    kind: Literal["budget.exceeded"] = "budget.exceeded"
    budget: str
    limit: float
    figure: float
    message: str


class PlanGenerated(_Event):
    """A supervisor's plan (version 1, or a replan). Recorded, so a resume reuses it."""

    kind: Literal["plan.generated"] = "plan.generated"
    step_id: str
    version: int
    plan: dict[str, Any]


class PlanApproved(_Event):
    """A person approved the plan awaiting confirmation, possibly as edited (`plan`). Runs
    recorded before approvals existed hold it; new runs record `approval.granted|edited`."""

    kind: Literal["plan.approved"] = "plan.approved"
    step_id: str
    version: int
    plan: dict[str, Any] | None = None


class PlanRejected(_Event):
    """Recorded before approvals existed; new runs record `approval.rejected`."""

    kind: Literal["plan.rejected"] = "plan.rejected"
    step_id: str
    version: int
    reason: str = ""


ApprovalSubject = Literal["step", "plan", "answer", "tool"]  # tool: an agent's held call


class ApprovalRequested(_Event):
    """A step is held before it starts until a person decides: `input` is what they are asked
    to approve (the step's rendered fields, or for a plan step `{"plan": …}` of `version`), or
    for a `human` step what to answer (`{"prompt": …, "input": …}`, subject `answer`), or an
    agent's tool call it holds back (`{tool, arguments, call_id, server, schema}`, subject
    `tool`: the step was running and waits with its transcript, core/tool_approvals.py)."""

    kind: Literal["approval.requested"] = "approval.requested"
    step_id: str
    subject: ApprovalSubject = "step"
    input: dict[str, Any] = Field(default_factory=dict)
    version: int | None = None
    # why it is asked: "approval: required", "approval: <condition>", "policy: <rule>" or
    # "plan: confirm"; None for a human step's question and for runs recorded before reasons
    reason: str | None = None


class ApprovalGranted(_Event):
    """A person approved the step (or the plan `version`) as it was asked, or answered a
    `human` step with `value` (its output)."""

    kind: Literal["approval.granted"] = "approval.granted"
    step_id: str
    version: int | None = None
    value: Any = None


class ApprovalEdited(_Event):
    """A person approved an edited input: for a step, fields that replace the step's own for
    this run; for a plan step, `{"plan": the edited plan}` (plan `version`)."""

    kind: Literal["approval.edited"] = "approval.edited"
    step_id: str
    input: dict[str, Any]
    version: int | None = None


class ApprovalRejected(_Event):
    """A person refused: the step (or plan step) fails with the reason."""

    kind: Literal["approval.rejected"] = "approval.rejected"
    step_id: str
    reason: str = ""
    version: int | None = None


class ApprovalWithdrawn(_Event):
    """Nobody needs to decide any more: the step lost an `any`/`quorum` race while it waited
    (`lost_race`), a `human` step's `timeout` passed (`timeout`; what follows says how), or a
    person skipped the step (`skipped`; its `step.skipped` follows)."""

    kind: Literal["approval.withdrawn"] = "approval.withdrawn"
    step_id: str
    reason: str = ""


class ChildStarted(_Event):
    """A `workflow` step started its child run `child_run_id` (derived from the run, the step
    and `generation`, so a crash before the child exists re-creates the same one), with the
    rendered `inputs` and the `budget` the pool leaves it. The step waits for the child."""

    kind: Literal["child.started"] = "child.started"
    step_id: str
    child_run_id: str
    generation: int = 0
    workflow: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    budget: dict[str, Any] = Field(default_factory=dict)


class ChildCompleted(_Event):
    """The child run of a `workflow` step ended (`outcome`, `error`); what it spent counts
    toward this run's budgets. Recorded once; the step's own end follows it."""

    kind: Literal["child.completed"] = "child.completed"
    step_id: str
    child_run_id: str
    outcome: RunOutcome
    error: str | None = None
    budget: str | None = None  # the child's budget that stopped it
    tokens: int = 0
    cost_usd: float = 0.0
    steps: int = 0
    loop_iterations: int = 0


class LoopIterated(_Event):
    """A loop step's iteration ended without its `until` holding and below `max_iterations`:
    iteration `iteration` (2 or more) begins, its body's steps join the run as children."""

    kind: Literal["loop.iterated"] = "loop.iterated"
    step_id: str
    iteration: int


class StepRetryRequested(_Event):
    """A person asked for a failed, interrupted or cancelled step to run again."""

    kind: Literal["step.retry_requested"] = "step.retry_requested"
    step_id: str


FeedbackRating = Literal["up", "down"]


class StepFeedback(_Event):
    """A person rated a finished step (`podium feedback`), with an optional comment; `who` is
    their OS user name. A record for people: it changes no step, on a live or finished run."""

    kind: Literal["step.feedback"] = "step.feedback"
    step_id: str
    rating: FeedbackRating
    comment: str | None = None
    who: str = ""


class ThreadCaughtUp(_Event):
    """A queued thread run's turn came: its answer step's `history` as the thread holds it now
    (the runs it waited for have answered), replacing what was known when it was asked."""

    kind: Literal["thread.caught_up"] = "thread.caught_up"
    step_id: str
    history: list[dict[str, str]] = Field(default_factory=list)


Event = Annotated[
    RunCreated
    | RunForked
    | RunResumed
    | RunDeadLettered
    | RunRevived
    | RunCancelRequested
    | RunCompleted
    | StepStarted
    | StepSucceeded
    | StepLost
    | StepRetrying
    | StepFailed
    | StepSkipped
    | StepCancelled
    | StepRetryRequested
    | LoopIterated
    | StepFeedback
    | ThreadCaughtUp
    | ModelCalled
    | AgentRouted
    | BreakerChanged
    | ToolStarted
    | ToolCalled
    | StepProgress
    | SignalRefused
    | BudgetExceeded
    | PlanGenerated
    | PlanApproved
    | PlanRejected
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalEdited
    | ApprovalRejected
    | ApprovalWithdrawn
    | ChildStarted
    | ChildCompleted,
    Field(discriminator="kind"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


_UNTIMED = {"at"}


def encode(event: Event) -> bytes:
    """Compact JSON without the `kind` tag and the time `at` (both stored beside it: `at` as
    Unix seconds, which keep its microseconds) and without default-valued fields."""
    return event.__pydantic_serializer__.to_json(event, exclude_defaults=True, exclude=_UNTIMED)


def _tagged(kind: str, at: float, data: bytes | str) -> str:
    """The event's whole JSON. Rows written before `at` left the JSON still hold it: their own
    (the same instant) comes later and wins."""
    text = data.decode() if isinstance(data, bytes) else data
    head = f'{{"kind":"{kind}","at":{at!r}'
    return f"{head},{text[1:]}" if len(text) > 2 else head + "}"


def decode_many(rows: Sequence[tuple[str, float, bytes | str]]) -> list[Event]:
    """Decode many (kind, at, data) rows in one call: much faster than one by one."""
    if not rows:
        return []
    joined = ",".join(_tagged(k, at, d) for k, at, d in rows)
    return EVENT_LIST_ADAPTER.validate_json("[" + joined + "]")
