"""The services agent steps use: the agent catalog, models, prices, tools and the circuit breakers
(per agent and per model, with fallback routing), shared by the runs of one engine and built on
first use."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from podium.agents import AgentCatalog, AgentSpec
from podium.clock import Clock, SystemClock
from podium.config import ProjectConfig
from podium.core.breaker import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    Skipped,
    Transition,
    on_failure,
    on_success,
    unavailable_message,
)
from podium.core.breaker import route as first_admitted
from podium.errors import UsageError
from podium.llm import resolve_model
from podium.llm.base import Model, ModelResponse
from podium.llm.prices import cost_usd
from podium.steps.base import Route, StepContext
from podium.tools.base import McpServerConfig, Tool, ToolRegistry

DEFAULT_MODEL_ENV = "PODIUM_MODEL"
SCRIPTED = "scripted:"


class AgentServices:
    """Implements the `podium.steps.base.AgentServices` port for one engine."""

    def __init__(
        self,
        *,
        project_dir: Path,
        user_dir: Path | None = None,
        default_model: str | None = None,
        mcp_servers: Mapping[str, Mapping[str, Any]] | None = None,
        catalog: AgentCatalog | None = None,
        breaker: BreakerPolicy | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        config: ProjectConfig | None = None,
        agents_given: bool = False,
    ) -> None:
        """`breaker` is the policy of every circuit breaker (default `BreakerPolicy()`); the
        breakers live as long as this object, keyed by agent name and by model string.
        `config` gives the named providers, MCP servers, agents folder and default model; the
        explicit arguments win over it (`agents_given`: `project_dir` was given, so its
        `agents/` wins over the configuration's agents folder)."""
        self._agents_given = agents_given
        self._project_dir = project_dir
        self._user_dir = user_dir
        self._given_model = default_model
        self._given_servers = mcp_servers
        self._catalog = catalog
        self._use(config or ProjectConfig(root=project_dir))
        self._tools: ToolRegistry | None = None
        self.breaker_policy = (
            breaker
            if isinstance(breaker, BreakerPolicy)
            else BreakerPolicy.model_validate(breaker or {})
        )
        self._clock = clock or SystemClock()
        self._breakers: dict[str, BreakerState] = {}
        self._tickets: dict[int, dict[str, int]] = {}
        self._serials = itertools.count(1)

    def _use(self, config: ProjectConfig) -> None:
        self.config = config
        self._default_model = self._given_model or config.model or os.environ.get(DEFAULT_MODEL_ENV)
        servers = self._given_servers
        if servers is None:
            servers = {name: s.settings() for name, s in config.mcp_servers.items()}
        self._servers = McpServerConfig.from_mapping(servers)

    @property
    def configured(self) -> bool:
        """Whether a project configuration applies (a file, or one given in code)."""
        c = self.config
        return c.path is not None or bool(c.providers or c.mcp_servers or c.model or c.agents)

    @property
    def adoptable(self) -> bool:
        """Whether `adopt` may still change the configuration (nothing has used it yet)."""
        return self._catalog is None and self._tools is None

    @property
    def project_dir(self) -> Path:
        return self._project_dir

    @property
    def default_model(self) -> str | None:
        return self._default_model

    def adopt(
        self, project_dir: Path, default_model: str | None, config: ProjectConfig | None = None
    ) -> None:
        """Use another catalog folder, default model and configuration (before the catalog and
        the tools are first used)."""
        if config is not None and self.adoptable:
            self._use(config)
        if self._catalog is None:
            self._project_dir = project_dir
        self._default_model = self._default_model or default_model

    @property
    def catalog(self) -> AgentCatalog:
        """The catalog, loaded on first use (a SpecError lists every problem in every file)."""
        if self._catalog is None:
            folder = self.config.agents_dir if not self._agents_given else None
            self._catalog = AgentCatalog.load(self._project_dir, self._user_dir, folder=folder)
        return self._catalog

    def agent(self, name: str) -> AgentSpec:
        return self.catalog.resolve(name)

    def model(
        self, spec: str | None, *, agent: str | None = None, step: str | None = None
    ) -> Model:
        """The model `spec` names (else the default model); a configured provider's key is read
        now, and a missing one names `agent` and `step`."""
        chosen = spec or self._default_model
        if not chosen:
            raise UsageError(
                "no model: give the agent a `model:` (e.g. openai:gpt-4o-mini), the step a "
                f"`model:`, or set {DEFAULT_MODEL_ENV} / --model"
            )
        return resolve_model(chosen, providers=self.config.providers, agent=agent, step=step)

    def model_string(
        self, agent: AgentSpec, model: str | None = None, provider: str | None = None
    ) -> str | None:
        """The model string for `agent`: a step's `model` over the agent's, else the default
        model; a `provider` option (the step's, else the agent's for the agent's model) names
        the configured provider, its model string then names only the model. A `scripted:`
        default model stands in for every agent's (a replay: `--model scripted:FILE`)."""
        if self._default_model is not None and self._default_model.startswith(SCRIPTED):
            return self._default_model
        if model is not None:
            return f"{provider}:{model}" if provider else model
        if agent.model is None:
            return self._default_model
        prefix = provider or agent.provider
        return f"{prefix}:{agent.model}" if prefix else agent.model

    @property
    def breakers(self) -> Mapping[str, BreakerState]:
        """Every breaker asked so far, by key (a read-only view)."""
        return MappingProxyType(self._breakers)

    def route(
        self,
        agent: AgentSpec,
        model: str | None = None,
        *,
        fallbacks: bool = True,
        provider: str | None = None,
    ) -> Route:
        """The first of [agent, *its fallbacks] whose own breaker and its model's breaker both
        admit a call now; `model` and `provider` override the requested agent's model and
        `provider` option (a step's `model:` and `options.provider`)."""
        candidates = {agent.name: agent}
        if fallbacks:
            candidates |= {spec.name: spec for spec in map(self.agent, agent.fallbacks)}
        models = {
            name: chosen
            for name, spec in candidates.items()
            if (chosen := self.model_string(spec, *((model, provider) if spec is agent else ())))
        }
        routing = first_admitted(
            agent.name,
            list(candidates)[1:],
            self._breakers,
            self.breaker_policy,
            self._clock.now(),
            models,
        )
        self._breakers = dict(routing.breakers)
        if routing.agent is None:
            return Route(agent=None, reason=unavailable_message(routing))
        keys = dict.fromkeys((routing.agent, models.get(routing.agent, routing.agent)))
        ticket = next(self._serials)
        self._tickets[ticket] = {key: self._breakers[key].generation for key in keys}
        return Route(
            agent=candidates[routing.agent],
            model=models.get(routing.agent),
            transitions=routing.transitions,
            reason=_detour(routing.skipped),
            ticket=ticket,
        )

    def settle(self, route: Route, ok: bool | None) -> tuple[Transition, ...]:
        """Report how the call `route` admitted went: True succeeded, False failed in a way that
        speaks of the provider's health (timeouts, 429, 5xx, connection errors), None says
        nothing (not made, cancelled, refused as a bad request). Settling twice is a no-op."""
        admitted = self._tickets.pop(route.ticket, None) if route.ticket is not None else None
        if admitted is None:
            return ()
        now, moved = self._clock.now(), []
        for key, generation in admitted.items():
            state = self._breakers[key]
            if ok is None:
                self._breakers[key] = _release(state, generation)
                continue
            outcome = on_success if ok else on_failure
            self._breakers[key], transition = outcome(state, self.breaker_policy, now, generation)
            moved += [transition] if transition is not None else []
        return tuple(moved)

    def cost_usd(self, model: Model, response: ModelResponse) -> float:
        return cost_usd(model.name, response.usage)

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        if not names:
            yield {}
            return
        tools = await self._registry().resolve(names)
        yield {tool.spec.name: tool for tool in tools}

    def tool_problems(self, names: Sequence[str]) -> list[str]:
        """What is wrong with tool names an agent lists (unknown built-ins, MCP servers that are
        not configured), told without starting any server."""
        return self._registry().check(list(names))

    def _registry(self) -> ToolRegistry:
        if self._tools is None:
            self._tools = ToolRegistry(self._servers)
        return self._tools

    async def aclose(self) -> None:
        if self._tools is not None:
            await self._tools.aclose()
            self._tools = None


def _detour(skipped: Sequence[Skipped]) -> str:
    """Why the first candidates were passed over: each refusing breaker, once."""
    refusals = dict.fromkeys(f"breaker {s.key} is {s.status}" for s in skipped)
    return "; ".join(refusals)


def _release(state: BreakerState, generation: int) -> BreakerState:
    """Give back the half-open trial slot of a call whose outcome says nothing about health."""
    if (
        state.status is not BreakerStatus.HALF_OPEN
        or state.generation != generation
        or state.half_open_in_flight == 0
    ):
        return state
    return replace(state, half_open_in_flight=state.half_open_in_flight - 1)
