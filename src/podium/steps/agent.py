"""The `agent` executor: a catalog agent answers a prompt, calling its tools for a bounded number
of turns; structured output is validated against its schema with a bounded re-ask.

Circuit breakers route per attempt: the attempt's first call picks the first of [agent, *its
fallbacks] the breakers admit, and the whole attempt talks to that agent (its own model,
instructions and tools); each later call asks that agent's breakers again. Every model call is
an OpenTelemetry span when tracing is configured."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from podium import telemetry
from podium.agents import AgentSpec
from podium.core.breaker import Transition
from podium.errors import ModelError, PodiumError, StepExecutionError
from podium.llm.base import (
    Message,
    Model,
    ModelOptions,
    ModelRequest,
    ModelResponse,
    accepts_images,
    model_options,
)
from podium.spec.model import AgentStep, StepBase
from podium.steps._context import context_block
from podium.steps._tooluse import ToolUse
from podium.steps._transcript import Transcript, reply_data
from podium.steps.base import (
    DETACHED,
    AgentServices,
    Route,
    StepContext,
    StepResult,
    StepServices,
)
from podium.steps.output import shape_output
from podium.tools.base import Tool


class AgentExecutor:
    """Runs `AgentStep`s through the services the runtime put in the step context."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, AgentStep):
            raise TypeError(f"AgentExecutor cannot run a {type(step).__name__}")
        agents = agent_services(services)
        try:
            provider = step.options.provider if step.options is not None else None
            chosen = agents.agent(step.agent).without_fallbacks(
                ctx.history.get("blocked_agents") or ()
            )
            agent, route = _admitted(services, agents, chosen, step.model, provider=provider)
            try:
                model = agents.model(route.model, agent=agent.name, step=ctx.step_id)
                async with agents.toolbox(agent.tools, ctx) as tools:
                    talk = _Conversation(step, ctx, services, agent, route, model, tools)
                    return await talk.run()
            finally:
                agents.settle(route, None)  # frees an admission no call used
        except ModelError as exc:
            raise StepExecutionError(
                f"agent {step.agent}: {exc}", retryable=exc.retryable, error_type=exc.error_type
            ) from exc
        except StepExecutionError:
            raise
        except PodiumError as exc:  # unknown agent, bad model string, unreachable MCP server
            raise StepExecutionError(
                f"agent {step.agent}: {exc}", retryable=False, error_type="config"
            ) from exc


def agent_services(services: StepServices) -> AgentServices:
    """The engine's agent services, or a configuration error saying how to get them."""
    agents = services.agents
    if agents is None:
        raise StepExecutionError(
            "agent and plan steps need an engine with agent services "
            "(Engine.open(..., agents_dir=DIR))",
            retryable=False,
            error_type="config",
        )
    return agents


def _admitted(
    services: StepServices,
    agents: AgentServices,
    agent: AgentSpec,
    model: str | None,
    *,
    fallbacks: bool = True,
    provider: str | None = None,
) -> tuple[AgentSpec, Route]:
    """Route a call, record what the routing changed, and fail retryably if nothing admits it
    (the step's retry policy waits, and a later attempt finds the breaker half-open)."""
    route = agents.route(agent, model, fallbacks=fallbacks, provider=provider)
    _report_transitions(services, route.transitions)
    if route.agent is None:
        raise StepExecutionError(
            f"agent {agent.name}: {route.reason}", retryable=True, error_type="breaker_open"
        )
    if route.agent.name != agent.name:
        data = {"requested": agent.name, "selected": route.agent.name, "reason": route.reason}
        services.report("agent.routed", data)
    return route.agent, route


def _report_transitions(services: StepServices, transitions: Sequence[Transition]) -> None:
    for moved in transitions:
        data = {"key": moved.key, "from_status": moved.from_status.value}
        data |= {"to_status": moved.to_status.value, "reason": moved.reason}
        services.report("breaker.changed", data)


class _Conversation:
    """One attempt's exchange with the model: tool turns, then the answer (re-asked if needed)."""

    def __init__(
        self,
        step: AgentStep,
        ctx: StepContext,
        services: StepServices,
        agent: AgentSpec,
        route: Route,
        model: Model,
        tools: Mapping[str, Tool],
    ) -> None:
        self.step, self.ctx, self.agent, self.model = step, ctx, agent, model
        self.services, self.tools = services, tools
        self.agents = agent_services(services)
        self.model_string = route.model
        self._admission: Route | None = route
        self.schema = _schema(step, agent)
        self.messages: list[Message] = _opening(step, ctx, agent, self.schema)
        self.turns = 0
        self.options = request_options(agent, step, tools)
        self.transcript = Transcript(ctx.history)
        self.tool_use = ToolUse(tools, ctx, services, self.transcript, images=accepts_images(model))

    async def run(self) -> StepResult:
        response = await self._tool_turns()
        for reask in range(self.step.max_reasks + 1):
            try:
                output = shape_output(response.text, self._output_spec(), step_id=self.ctx.step_id)
            except StepExecutionError as exc:
                if reask == self.step.max_reasks:
                    raise StepExecutionError(
                        f"agent {self.agent.name} gave no valid answer after "
                        f"{self.step.max_reasks} re-asks: {exc}",
                        retryable=True,
                        error_type="output",
                    ) from exc
                response = await self._reask(response, str(exc))
                continue
            meta = {"agent": self.agent.name, "model": self.model.name, "turns": self.turns}
            return StepResult(output, meta=meta)
        raise AssertionError("unreachable")

    def _output_spec(self) -> Any:
        return self.schema if self.schema is not None else "text"

    async def _tool_turns(self) -> ModelResponse:
        specs = tuple(tool.spec for tool in self.tools.values())
        for _ in range(self.step.max_turns):
            schema = self.schema if not specs else None
            response = await self._call(specs, schema)
            if not response.message.tool_calls:
                return response
            self.messages.append(response.message)
            self.messages += await self.tool_use.answer(response.message.tool_calls, self.turns)
        raise StepExecutionError(
            f"agent {self.agent.name} used all {self.step.max_turns} turns calling tools without "
            "an answer; raise max_turns or narrow the task",
            retryable=False,
            error_type="turns",
        )

    async def _reask(self, previous: ModelResponse, problem: str) -> ModelResponse:
        self.messages.append(previous.message)
        schema_text = json.dumps(self.schema, sort_keys=True)
        self.messages.append(
            Message(
                "user",
                f"Your answer could not be used: {problem}\nReply again with JSON only, "
                f"matching this JSON Schema:\n{schema_text}",
            )
        )
        return await self._call((), self.schema)

    async def _call(
        self, specs: tuple[Any, ...], schema: Mapping[str, Any] | None
    ) -> ModelResponse:
        recorded = self.transcript.next_reply()
        if recorded is not None:  # answered before the crash: replayed, not asked again
            self.turns += 1
            return ModelResponse(recorded, model=self.model.name, finish_reason="recorded")
        request = ModelRequest(
            messages=tuple(self.messages),
            tools=specs,
            output_schema=schema,
            options=self._options_for_this_turn(),
            agent=self.agent.name,
            step_id=self.ctx.step_id,
        )
        route = self._admit()
        ok: bool | None = None  # unless the call succeeds or fails retryably: no health signal
        try:
            response = await self._complete(request)
            ok = True
        except ModelError as exc:
            ok = False if exc.retryable else None
            raise
        finally:
            _report_transitions(self.services, self.agents.settle(route, ok))
        self.turns += 1
        return response

    def _options_for_this_turn(self) -> ModelOptions:
        """A forced tool (`tool_choice: required` or a tool's name) forces the first turn only:
        forced on every turn, the model could never answer after the tool returns."""
        choice = self.options.tool_choice
        if self.turns == 0 or choice in (None, "auto", "none"):
            return self.options
        return dataclasses.replace(self.options, tool_choice="auto")

    def _admit(self) -> Route:
        """The attempt's routing admitted its first call; later calls ask the breakers again."""
        route, self._admission = self._admission, None
        if route is not None:
            return route
        admitted = _admitted(
            self.services, self.agents, self.agent, self.model_string, fallbacks=False
        )
        return admitted[1]

    async def _complete(self, request: ModelRequest) -> ModelResponse:
        span = telemetry.model_span(
            self.model.name,
            temperature=request.options.temperature,
            max_tokens=request.options.max_tokens,
            run_id=self.ctx.run_id,
            step_id=self.ctx.step_id,
            agent=self.agent.name,
        )
        with span as call:
            started = time.monotonic()
            response = await self.model.complete(request, on_delta=self.services.delta)
            seconds = time.monotonic() - started
            cost = self.agents.cost_usd(self.model, response)
            call.record(response.usage, response.finish_reason, response.model or None, cost)
        await self._record(response, cost, seconds)
        return response

    async def _record(self, response: ModelResponse, cost: float, seconds: float) -> None:
        """The reply is committed before anything it asks for happens (its tool calls)."""
        await self.services.checkpoint(
            "model.called",
            {
                "model": self.model.name,
                "agent": self.agent.name,
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
                "cost_usd": cost,
                "latency_seconds": round(seconds, 6),
                "finish_reason": response.finish_reason,
                "estimated": response.usage.estimated,
                "turn": self.turns + 1,
                "reply": reply_data(response.message),
            },
        )


def request_options(agent: AgentSpec, step: AgentStep, tools: Mapping[str, Tool]) -> ModelOptions:
    """The agent's call options with the step's `options:` over them, as a model request takes
    them; a forced tool (`tool_choice: mcp:fs/read`) is named as the model sees it."""
    chosen = agent.options if step.options is None else agent.options.merged(step.options)
    return model_options(chosen, tool_choice=_exposed(chosen.tool_choice, tools))


def _exposed(choice: str | None, tools: Mapping[str, Tool]) -> str | None:
    if choice is None or choice in ("auto", "none", "required") or choice in tools:
        return choice
    server, _, tool = choice.removeprefix("mcp:").partition("/")
    return f"{server}__{tool}" if f"{server}__{tool}" in tools else choice


def _schema(step: AgentStep, agent: AgentSpec) -> Mapping[str, Any] | None:
    if isinstance(step.output, dict):
        return step.output
    if agent.output is not None:
        return agent.output
    return {} if step.output == "json" else None


def _opening(
    step: AgentStep, ctx: StepContext, agent: AgentSpec, schema: Mapping[str, Any] | None
) -> list[Message]:
    system = agent.instructions or f"You are {agent.name}. {agent.description}".strip()
    context = context_block(ctx.upstream, step.context, step.context_limits)
    prompt = step.prompt if not context else f"{step.prompt}\n\n{context}"
    if schema is not None:
        prompt += "\n\nAnswer with JSON only" + (
            f", matching this JSON Schema:\n{json.dumps(schema, sort_keys=True)}" if schema else "."
        )
    earlier = [Message(said.role, said.content) for said in step.history]
    return [Message("system", system), *earlier, Message("user", prompt)]
