"""A run's state as the fold of its events sees it: step statuses, outputs and the indexes the
scheduler reads (ready heap, join counters, running set, parked retry timers). `core.fold` builds
and updates it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from podium.core import events as ev
from podium.core.graph import Graph
from podium.core.redact import PATTERNS_ONLY, Redactor
from podium.errors import StepNotFoundError
from podium.spec.model import LoopStep, StepBase, Workflow
from podium.spec.policy import Policy


class StepStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"  # a plan step's children run; a step or plan awaits a person
    RETRYING = "retrying"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)


@dataclass(slots=True, eq=False)
class StepState:
    spec: StepBase
    index: int
    rank: float
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    generation: int = 0
    requeued: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    truncated: bool = False
    meta: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    retry_at: datetime | None = None
    reason: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    parent: str | None = None
    transcript: list[dict[str, Any]] | None = None  # the running attempt's model turns, tool calls
    approved: bool = False  # a person approved it (or its edit): it is not asked again
    ok: int = 0
    bad: int = 0
    skipped: int = 0

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(slots=True, eq=False)
class PlanState:
    """A plan step's plans: every version, the children of the one running, what failed."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    awaiting: bool = False
    replans: int = 0


@dataclass(slots=True, eq=False)
class LoopState:
    """A loop step's iterations: `iterations[n - 1]` lists iteration n's children (this
    generation's; a retried loop starts again at 1). `due` is set when the last iteration's
    children are all done: the scheduler then decides to iterate, succeed or fail."""

    iterations: list[list[str]] = field(default_factory=list)
    due: bool = False

    @property
    def current(self) -> list[str]:
        return self.iterations[-1] if self.iterations else []


@dataclass(frozen=True, slots=True)
class Approval:
    """A step held for a person (`approval.requested`): what they are asked, since when."""

    step_id: str
    subject: str  # step | plan
    input: dict[str, Any]
    since: datetime
    version: int | None = None
    reason: str | None = None  # why it is asked (`approval.requested` reason)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One person's rating of a finished step (`step.feedback`)."""

    rating: str  # up | down
    comment: str | None
    who: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ForkInfo:
    """Where a forked run came from (`run.forked`): the parent, the step it was forked from,
    and the steps it took over from the parent instead of running them."""

    parent_run_id: str
    from_step: str
    reused: tuple[str, ...]


@dataclass(slots=True, eq=False)
class ChildLink:
    """A `workflow` step's child run (`child.started`): its id, the step's generation that
    started it, and its status here (`running` until `child.completed` says how it ended)."""

    run_id: str
    step_id: str
    generation: int
    workflow: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None

    @property
    def live(self) -> bool:
        return self.status == "running"


@dataclass(slots=True, eq=False)
class Derived:
    """What core/taint.py works out from the steps' specs (never from events), kept between
    questions so each step's taint is worked out once per run, not once per gate.
    `RunState.specs_changed()` drops it whenever a step is added, removed or edited."""

    taint: dict[str, bool] = field(default_factory=dict)  # step -> its output is untrusted
    children: dict[str, list[str]] | None = None  # parent -> child step ids, built when asked


@dataclass(slots=True, eq=False)
class RunState:
    run_id: str
    workflow: Workflow
    inputs: dict[str, Any]
    workspace: str
    workspace_path: Path
    agents_dir: str | None
    default_model: str | None
    created_at: datetime
    graph: Graph
    steps: dict[str, StepState]
    seq: int = 1
    updated_at: datetime | None = None
    ready: list[tuple[float, int, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    retrying: dict[str, datetime] = field(default_factory=dict)
    doomed: dict[str, ev.SkipReason] = field(default_factory=dict)
    losers: set[str] = field(default_factory=set)
    unfinished: int = 0
    failures: list[str] = field(default_factory=list)
    stopping: str | None = None
    cancel_reason: str | None = None  # what `cancel --reason` said, for people
    outcome: str | None = None
    dead: str | None = None  # why the run was dead-lettered (`run.dead_lettered`), until revived
    recoveries: int = 0  # takeovers from dead drivers in a row, without a step finishing since
    completed_error: str | None = None
    budget_error: str | None = None
    steps_started: int = 0
    plans: dict[str, PlanState] = field(default_factory=dict)
    settled_plans: dict[str, tuple[bool, Any]] = field(default_factory=dict)
    tokens: int = 0
    cost_usd: float = 0.0
    config: dict[str, Any] | None = None  # the project configuration `run.created` recorded
    fork: ForkInfo | None = None  # set by `run.forked`
    feedback: dict[str, list[Feedback]] = field(default_factory=dict)  # by step, oldest first
    approvals: dict[str, Approval] = field(default_factory=dict)  # pending, by step
    loops: dict[str, LoopState] = field(default_factory=dict)  # by loop step, once started
    loop_iterations: int = 0  # loop iterations started anywhere in the run (a budget)
    policy: Policy = field(default_factory=Policy)  # the approval policy `run.created` recorded
    children: dict[str, list[ChildLink]] = field(default_factory=dict)  # by step, oldest first
    parent: dict[str, str] | None = None  # a child run: {"run_id", "step_id"} of its parent
    depth: int = 0  # how deep in a run tree this run is (0 for a run nobody started)
    queue: str = ev.DEFAULT_QUEUE  # which workers may claim it (`run.created`'s `queue`)
    thread: dict[str, Any] | None = None  # a thread's run: {"id", "message", "routing", "on_busy"}
    # what every event is redacted with before it is applied and committed (core/turn.py): set
    # by the runtime from the run's secrets; not part of the fold (events hold no secret)
    redactor: Redactor = PATTERNS_ONLY
    derived: Derived = field(default_factory=Derived)  # worked out from specs, not recorded

    def specs_changed(self) -> None:
        """A step was added, removed or edited: what was worked out from the specs is stale."""
        self.derived = Derived()

    @property
    def status(self) -> str:
        """pending | running | waiting | dead | succeeded | failed | cancelled. A run is waiting
        when nothing can start until a parked timer is due (a retry's backoff) or a person
        decides (interrupted steps, a step or plan awaiting approval); dead when it was
        dead-lettered after too many takeovers and nothing runs until a person revives it."""
        if self.outcome is not None:
            return self.outcome
        if self.dead is not None:
            return "dead"
        if self.running or self.ready or self.doomed or self.losers or self.settled_plans:
            return "running"
        if any(loop.due for loop in self.loops.values()):
            return "running"
        if self.retrying or self.awaits_person or self.live_children:
            return "waiting"
        return "running" if self.seq > 1 else "pending"

    @property
    def awaits_person(self) -> bool:
        """Nothing runs, nothing is due, and a person must decide before anything can."""
        if self.outcome is not None or self.stopping is not None:
            return False
        if self.running or self.ready or self.retrying or self.doomed or self.losers:
            return False
        if self.settled_plans or self.live_children:  # a child's end comes first
            return False
        if any(loop.due for loop in self.loops.values()):  # its next iteration comes first
            return False
        if self.approvals or any(p.awaiting for p in self.plans.values()):
            return True
        return any(s.status is StepStatus.INTERRUPTED for s in self.steps.values())

    @property
    def live_children(self) -> list[ChildLink]:
        """Child runs that have not ended yet and that a step still waits for (a step that
        lost a race while its child ran does not wait for it; the runtime stops that child)."""
        return [
            link
            for step_id, links in self.children.items()
            if self.steps[step_id].status is StepStatus.WAITING
            for link in links
            if link.live
        ]

    @property
    def interrupted(self) -> list[str]:
        return [s.id for s in self.steps.values() if s.status is StepStatus.INTERRUPTED]

    def template_context(self, step_id: str | None = None) -> dict[str, Any]:
        """The names templates read. For a loop's child (`step_id`), `steps.<body id>` is its
        iteration's step and `loop` is {"iteration", "previous": {body id: step}}."""
        step = self.steps.get(step_id) if step_id is not None else None
        scope = loop_scope(self, step.parent, step.id) if step is not None else None
        return self.loop_context(*scope) if scope is not None else self._context({}, None)

    def loop_context(self, loop_id: str, iteration: int) -> dict[str, Any]:
        """What an iteration of a loop sees (its body steps, outer ones; `until` too)."""
        aliases: dict[str, str] = {}
        scope: tuple[str, int] | None = (loop_id, iteration)
        while scope is not None:  # innermost loop first: its body ids shadow the outer ones
            outer_id, n = scope
            for body_id in body_ids(self.steps[outer_id].spec):
                aliases.setdefault(body_id, f"{outer_id}.{n}.{body_id}")
            scope = loop_scope(self, self.steps[outer_id].parent, outer_id)
        ids = body_ids(self.steps[loop_id].spec)
        previous = {b: f"{loop_id}.{iteration - 1}.{b}" for b in ids} if iteration > 1 else {}
        view = _StepsView(self.steps, self.loops, previous)
        loop = {"iteration": iteration, "previous": {b: view[b] for b in previous}}
        return self._context(aliases, loop)

    def _context(self, aliases: dict[str, str], loop: dict[str, Any] | None) -> dict[str, Any]:
        steps = _StepsView(self.steps, self.loops, aliases)
        context = {"inputs": self.inputs, "steps": steps, "run": {"id": self.run_id}}
        return context if loop is None else {**context, "loop": loop}


def body_ids(spec: StepBase) -> list[str]:
    """A loop step's body ids (none for other kinds)."""
    return [s.id for s in spec.steps] if isinstance(spec, LoopStep) else []


def loop_scope(state: RunState, parent: str | None, step_id: str) -> tuple[str, int] | None:
    """(loop id, iteration) when `step_id` is a child `<loop>.<n>.<body id>` of a loop."""
    if parent is None or parent not in state.loops:
        return None
    return parent, int(step_id[len(parent) + 1 :].split(".", 1)[0])


class _StepsView(Mapping[str, Any]):
    """`steps.<id>.output|status|error|attempts` for templates, built lazily per lookup; a loop
    step adds `iterations` (one {body id: step} per iteration). `aliases` map a loop body's ids
    to an iteration's children."""

    __slots__ = ("_aliases", "_loops", "_steps")

    def __init__(
        self, steps: dict[str, StepState], loops: dict[str, LoopState], aliases: dict[str, str]
    ) -> None:
        self._steps = steps
        self._loops = loops
        self._aliases = aliases

    def __getitem__(self, key: str) -> dict[str, Any]:
        s = self._steps[self._aliases.get(key, key)]
        view = {
            "output": s.output,
            "status": str(s.status),
            "error": s.error,
            "attempts": s.attempts,
        }
        record = self._loops.get(s.id)
        if record is not None:
            plain = _StepsView(self._steps, self._loops, {})
            view["iterations"] = [
                {c[len(s.id) + 1 :].split(".", 1)[1]: plain[c] for c in children}
                for children in record.iterations
            ]
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


def require_step(state: RunState, step_id: str) -> StepState:
    step = state.steps.get(step_id)
    if step is None:
        raise StepNotFoundError(state.run_id, step_id, list(state.steps))
    return step
