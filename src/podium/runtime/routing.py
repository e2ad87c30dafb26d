"""Choosing the agent for a thread's message (SPEC F17): `--agent` wins; else the project's
`[routing]` rules in order, then its router agent (one structured-output model call whose answer
is an enum of the allowed agents), then its default; an agent the policy blocks is never chosen.
What was requested and what was chosen, and by what, is the `routing` record `run.created`
keeps."""

from __future__ import annotations

import json
from typing import Any

from podium.config import ProjectConfig
from podium.errors import ModelError, Problem, SpecError, UsageError
from podium.llm.base import Message, ModelRequest
from podium.runtime.services import AgentServices

ROUTER_STEP = "routing"


def blocked(config: ProjectConfig, agent: str) -> bool:
    """Whether the project's policy (`[policy] block_agents`) forbids `agent`."""
    policy = getattr(config, "policy", None)
    return bool(policy is not None and policy.blocks(agent))


async def choose_agent(
    services: AgentServices,
    message: str,
    requested: str | None,
    routed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The routing record: `requested` (the `--agent`, or None), `agent` (the catalog's name of
    the chosen one), `by` (`request`, `rule`, `router`, `default` or `only agent`) and, as they
    apply, the matching rule's `rule` index and `pattern`, the `router`, its `usage`, the
    blocked agents `skipped` and why a router's choice was not used (`router_error`).

    UsageError if the requested agent is blocked or unknown, or if nothing chooses one;
    SpecError (with `podium.toml: routing…` paths) if the routing names unknown agents.
    A `routed` record (made earlier for this message) is only checked again and kept."""
    config = services.config
    if routed is not None:
        _blocked_check(config, services.agent(routed["agent"]).name, "routing")
        return dict(routed)
    if requested is not None:
        name = _blocked_check(config, services.agent(requested).name, "--agent")
        return {"requested": requested, "agent": name, "by": "request"}
    _check_names(services)
    routing = config.routing
    skipped: list[str] = []
    record: dict[str, Any] = {"requested": None}
    for index, rule in enumerate(routing.rules):
        if not rule.matches(message):
            continue
        name = services.agent(rule.agent).name
        if blocked(config, name):
            skipped.append(name)
            continue
        record |= {"agent": name, "by": "rule", "rule": index, "pattern": rule.pattern}
        return _with_skipped(record, skipped)
    if routing.router is not None:
        chosen = await _ask_router(services, routing.router, message, record)
        if chosen is not None:
            return _with_skipped(record | {"agent": chosen, "by": "router"}, skipped)
    if routing.default is not None:
        name = services.agent(routing.default).name
        if blocked(config, name):
            raise UsageError(_blocked_message(config, name, "routing.default"))
        return _with_skipped(record | {"agent": name, "by": "default"}, skipped)
    allowed = _allowed(services, exclude=None)
    if len(allowed) == 1 and not routing.configured:
        return _with_skipped(record | {"agent": allowed[0], "by": "only agent"}, skipped)
    raise UsageError(_nothing_chose(config, record, skipped))


def _check_names(services: AgentServices) -> None:
    """Every agent the routing names exists: a SpecError lists each one that does not."""
    routing, where = services.config.routing, _where(services.config)
    refs = [(rule.agent, f"{where}routing.rules.{i}.agent") for i, rule in enumerate(routing.rules)]
    for key in ("router", "default"):
        name = getattr(routing, key)
        if name is not None:
            refs.append((name, f"{where}routing.{key}"))
    problems: list[Problem] = services.catalog.check(refs)
    if problems:
        raise SpecError(problems, source=where.rstrip(": ") or None, subject="routing")


async def _ask_router(
    services: AgentServices, router: str, message: str, record: dict[str, Any]
) -> str | None:
    """The router agent's choice among the allowed agents (None, with `router_error` recorded,
    when it could not make one: the default, if any, applies then)."""
    agent = services.agent(router)
    record["router"] = agent.name
    allowed = _allowed(services, exclude=agent.name)
    if not allowed:
        record["router_error"] = "no agent to choose from (every other agent is blocked)"
        return None
    schema = {
        "type": "object",
        "properties": {"agent": {"type": "string", "enum": allowed}},
        "required": ["agent"],
        "additionalProperties": False,
    }
    catalog = "\n".join(
        f"- {n}: {services.agent(n).description or '(no description)'}" for n in allowed
    )
    system = agent.instructions or (
        "You route a user's message to the agent best suited to answer it."
    )
    prompt = (
        f"Choose the agent that should answer this message.\n\nAgents:\n{catalog}\n\n"
        f"Message:\n{message}\n\nAnswer with JSON only, matching this JSON Schema:\n"
        f"{json.dumps(schema, sort_keys=True)}"
    )
    model_name = services.model_string(agent)
    try:
        model = services.model(model_name, agent=agent.name, step=ROUTER_STEP)
        request = ModelRequest(
            messages=(Message("system", system), Message("user", prompt)),
            output_schema=schema,
            agent=agent.name,
            step_id=ROUTER_STEP,
        )
        response = await model.complete(request)
    except ModelError as exc:
        record["router_error"] = f"the router's model call failed: {exc}"
        return None
    record["usage"] = {
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
    }
    choice = _parsed_choice(response.text)
    if choice not in allowed:
        record["router_error"] = (
            f"the router answered {response.text[:200]!r}, not one of {allowed}"
        )
        return None
    return choice


def _parsed_choice(text: str) -> str | None:
    try:
        data = json.loads(text.strip().removeprefix("```json").removesuffix("```"))
    except json.JSONDecodeError:
        return None
    value = data.get("agent") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _allowed(services: AgentServices, *, exclude: str | None) -> list[str]:
    config = services.config
    return [n for n in services.catalog.names() if n != exclude and not blocked(config, n)]


def _blocked_check(config: ProjectConfig, name: str, asked_by: str) -> str:
    if blocked(config, name):
        raise UsageError(_blocked_message(config, name, asked_by))
    return name


def _blocked_message(config: ProjectConfig, name: str, asked_by: str) -> str:
    where = f" in {config.path}" if config.path is not None else ""
    return (
        f"agent {name!r} ({asked_by}) is blocked by the project's policy (policy.block_agents"
        f"{where}); name another agent, or remove it from block_agents"
    )


def _nothing_chose(config: ProjectConfig, record: dict[str, Any], skipped: list[str]) -> str:
    why = [f"blocked: {', '.join(skipped)}"] if skipped else []
    why += [record["router_error"]] if "router_error" in record else []
    said = f" ({'; '.join(why)})" if why else ""
    where = f" in {config.path}" if config.path is not None else " in podium.toml"
    return (
        f"no agent was chosen for this message{said}: name one with --agent, or set "
        f"[routing] default (or rules, or a router){where}"
    )


def _with_skipped(record: dict[str, Any], skipped: list[str]) -> dict[str, Any]:
    return record | ({"skipped": skipped} if skipped else {})


def _where(config: ProjectConfig) -> str:
    return f"{config.path}: " if config.path is not None else ""
