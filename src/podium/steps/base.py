"""The executor port: what a step kind implements, the plain data one attempt is given
(`StepContext`), and the typed services it may call back into while it runs (`StepServices`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podium.agents import AgentCatalog, AgentSpec
from podium.core.breaker import Transition
from podium.core.happenings import make_report
from podium.core.redact import PATTERNS_ONLY, Redactor
from podium.core.tool_approvals import ToolGate
from podium.llm.base import Model, ModelResponse
from podium.spec.model import StepBase
from podium.spec.policy import Policy
from podium.tools.base import Tool


@dataclass(frozen=True, kw_only=True, slots=True)
class StepContext:
    """The plain, picklable facts of one attempt besides the (already rendered) step itself.

    `upstream` holds the outputs of the step's needs (for context passing); `history` is what a
    replanning plan step is told (earlier plans, failures, completed outputs). `tool_gate` says
    which of an agent's tool calls wait for a person (None, outside a run: none do). `policy` is
    the run's recorded policy: what the safety rules of shell, file and http steps (sandbox,
    network allow-list, protected files) allow; outside a run, the safe defaults. `protected`
    names Podium's own state besides the workspace's `.podium/` folder (always protected): the
    store file, the project configuration, the agents catalog — absolute paths steps must not
    read or write (file steps and tools refuse them; the shell sandbox mounts them read-only).
    """

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    workspace: Path
    output_limit_bytes: int
    upstream: Mapping[str, Any] = field(default_factory=dict)
    history: Mapping[str, Any] = field(default_factory=dict)
    tool_gate: ToolGate | None = None
    policy: Policy = field(default_factory=Policy)
    protected: tuple[Path, ...] = ()
    redactor: Redactor = PATTERNS_ONLY  # the run's secrets: what logs written here must hide


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where one model call goes. `agent` is the candidate the breakers admitted (None when they
    refused every one) and `model` its model string; `transitions` are the breaker changes the
    routing made, to record; `reason` says why `agent` is not the one asked for (empty when it
    is), or why there is none. Settle `ticket` with `AgentServices.settle` after the call."""

    agent: AgentSpec | None
    model: str | None = None
    transitions: tuple[Transition, ...] = ()
    reason: str = ""
    ticket: int | None = None


class AgentServices(Protocol):
    """What agent and plan steps need from the engine: the catalog, models, prices, tools and the
    circuit breakers (implemented by `podium.runtime.services.AgentServices`)."""

    @property
    def catalog(self) -> AgentCatalog: ...

    def agent(self, name: str) -> AgentSpec: ...

    def model(
        self, spec: str | None, *, agent: str | None = None, step: str | None = None
    ) -> Model:
        """The model `spec` names (else the default); `agent` and `step` name the caller in
        errors (a provider's missing key)."""
        ...

    def cost_usd(self, model: Model, response: ModelResponse) -> float: ...

    def route(
        self,
        agent: AgentSpec,
        model: str | None = None,
        *,
        fallbacks: bool = True,
        provider: str | None = None,
    ) -> Route: ...

    def settle(self, route: Route, ok: bool | None) -> tuple[Transition, ...]: ...

    def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AbstractAsyncContextManager[Mapping[str, Tool]]: ...


class StepServices(Protocol):
    """What a running attempt may call back into.

    `report(kind, data)` records something only an attempt can know, one of
    `podium.core.happenings.REPORT_KINDS` (a model call and its usage, a tool call, routing, a
    breaker change, progress); anything else raises `ReportError` at once. `delta(text)` streams
    live output to subscribers (not stored). `agents` is the engine's agent services, or None
    where there are none (agent and plan steps then fail with a configuration error).
    """

    def report(self, kind: str, data: Mapping[str, Any]) -> None: ...

    async def checkpoint(self, kind: str, data: Mapping[str, Any]) -> None:
        """Report, and return once the report is committed: what must be durable before the
        attempt goes on (a model's reply before its tool calls run, a tool call before it is
        made)."""
        ...

    def delta(self, text: str) -> None: ...

    @property
    def agents(self) -> AgentServices | None: ...


class DetachedServices:
    """Services for an attempt run outside a run (an executor called directly, a tool's step):
    reports are checked like a run checks them, then dropped; deltas go nowhere."""

    def __init__(self, step_id: str = "", agents: AgentServices | None = None) -> None:
        self._step_id = step_id
        self._agents = agents

    def report(self, kind: str, data: Mapping[str, Any]) -> None:
        make_report(self._step_id, kind, data)

    async def checkpoint(self, kind: str, data: Mapping[str, Any]) -> None:
        make_report(self._step_id, kind, data)

    def delta(self, text: str) -> None:
        return None

    @property
    def agents(self) -> AgentServices | None:
        return self._agents


DETACHED = DetachedServices()


@dataclass(frozen=True, slots=True)
class StepResult:
    """A successful attempt: the step's output (JSON-compatible) and small facts about it."""

    output: Any
    meta: dict[str, Any] | None = None


class Executor(Protocol):
    """Runs one attempt of one step kind.

    Raise `podium.errors.StepExecutionError` for a failure (with `retryable`); let
    `asyncio.CancelledError` propagate after cleaning up (kill processes, close sockets).
    """

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult: ...
