"""What the engine checks before anything is recorded: a workflow and its inputs become the run's
`run.created` event; an edited plan is checked like a planner's. Every problem is raised before
the store is touched."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from podium.agents import AgentSpec, check_tool_choice
from podium.clock import Clock
from podium.core import events as ev
from podium.core import plans
from podium.core.state import RunState
from podium.errors import InputError, Problem, SpecError, UsageError
from podium.ids import RunId, new_run_id
from podium.llm import is_known_provider, unknown_provider
from podium.llm.base import config_problem
from podium.runtime.placement import placed
from podium.runtime.services import DEFAULT_MODEL_ENV, AgentServices
from podium.spec.load import WorkflowSource, load_workflow
from podium.spec.loop import walk
from podium.spec.model import AgentStep, PlanStep, Workflow, WorkflowStep
from podium.spec.plan import check_plan
from podium.spec.policy import Policy, blocked_problem, effective
from podium.spec.secrets import default_env, found_secret, is_placeholder, placeholder
from podium.spec.subworkflows import Registry, check_tree, file_key
from podium.spec.validate import coerce_inputs
from podium.store.base import check_queue

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def new_run(
    workflow: WorkflowSource,
    inputs: Mapping[str, Any] | None,
    *,
    run_id: str | None,
    workspace: Path,
    services: AgentServices,
    clock: Clock,
    workflows: Registry | None = None,
    memory: dict[str, str] | None = None,
    queue: str = ev.DEFAULT_QUEUE,
) -> tuple[ev.RunCreated, Workflow]:
    """The validated workflow and the `run.created` event that records it (and its inputs).
    The workflows its `workflow` steps name (`workflows`: the registered names) are checked
    too, recursively: each exists, validates, gets inputs it declares, and none recurses.
    A `type: secret` input is recorded as a placeholder; its value goes to `memory` (by
    placeholder) and never into the event. Where each step runs is settled here (the
    workflow's `execution`, else the project's: runtime/placement.placed) and recorded."""
    wf = placed(load_workflow(workflow, agents=AgentChecks(services)), services.config.execution)
    values = hide_secrets(wf, coerce_inputs(wf, secrets_from_env(wf, inputs)), memory)
    policy = check_agent_steps(wf, services)
    check_children(wf, workflow, workspace, services, workflows)
    rid = RunId(check_run_id(run_id)) if run_id is not None else new_run_id()
    created = ev.RunCreated(
        at=clock.now(),
        run_id=rid,
        workflow=wf.model_dump(mode="json", exclude_unset=True),
        inputs=values,
        workspace=str(workspace.resolve()),
        agents_dir=str(services.project_dir.resolve()),
        default_model=services.default_model,
        config=services.config.record() if services.configured else None,
        policy=policy.record(),
        queue=check_queue(queue),
    )
    return created, wf


def secrets_from_env(wf: Workflow, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """`inputs`, with each secret input that was not given read from its variable if set."""
    given = dict(inputs or {})
    for name, spec in wf.inputs.items():
        env = spec.env or default_env(name)
        if spec.type == "secret" and name not in given and os.environ.get(env):
            given[name] = os.environ[env]
    return given


def hide_secrets(
    wf: Workflow, values: dict[str, Any], memory: dict[str, str] | None
) -> dict[str, Any]:
    """Secret inputs replaced by placeholders (their values kept in `memory`); InputError if
    another input's value holds a key, a password or a token (it would be stored)."""
    for name, spec in wf.inputs.items():
        value = values.get(name)
        if spec.type != "secret":
            if kind := found_secret(json.dumps(value)):
                raise InputError(
                    f"input {name} holds {kind}, which would be stored with the run; declare "
                    f"the input `type: secret` (its value is then never stored)"
                )
        elif isinstance(value, str) and not is_placeholder(value):
            values[name] = hidden = placeholder(name, secrets.token_hex(8))
            if memory is not None:
                memory[hidden] = value
    return values


def check_agent_steps(wf: Workflow, services: AgentServices) -> Policy:
    """UsageError before anything is recorded if the default model or the model of an agent
    step (or a plan step's planner, aggregator, verifier or listed `agents`) is missing, names a
    provider that is neither built in nor configured, a configured provider whose key variable
    is not set (providers nobody uses are not checked), cannot be built (a missing script) or
    cannot be called at all (a built-in provider without its API key); SpecError if a step's
    `tool_choice` names a tool its agent lacks. A plan step that lists no `agents` may give work
    to any agent of the catalog: those are checked when the plan names them. Returns the run's
    effective approval policy (`check_policy`)."""
    policy = check_policy(wf, services)
    providers = services.config.providers
    if services.default_model:
        _known(services.default_model, providers, "the default model")
    for where, step in walk(wf.steps):  # a loop's body too: its agents run as well
        if isinstance(step, PlanStep):  # the supervisors, and the agents it may give work to
            for name in dict.fromkeys(filter(None, _plan_agents(step))):
                _check_model(services, step, services.agent(name))
            continue
        if not isinstance(step, AgentStep):
            continue
        agent = services.agent(step.agent)
        _check_tool_choice(step, agent, where)
        provider = step.options.provider if step.options else None
        _check_model(services, step, agent, step.model, provider)
    return policy


def check_policy(wf: Workflow, services: AgentServices) -> Policy:
    """The project's policy made stricter by the workflow's; SpecError (exit 2) if the workflow
    tries to loosen a rule, or a step names an agent the policy blocks (an agent step's agent,
    a plan step's planner, aggregator, verifier or listed agents)."""
    policy, problems = effective(services.config.policy, wf.policy)
    for index, step in enumerate(wf.steps):
        for path, name in _agents_named(step, f"steps[{index}]"):
            if policy.blocks(name):
                problems.append(blocked_problem(name, path))
    if problems:
        raise SpecError(problems)
    return policy


def _agents_named(step: object, where: str) -> list[tuple[str, str]]:
    """(path, agent name) for every agent `step` names, a loop's body included."""
    if getattr(step, "kind", None) == "loop":
        body: list[object] = getattr(step, "steps", [])
        return [n for i, s in enumerate(body) for n in _agents_named(s, f"{where}.steps[{i}]")]
    if isinstance(step, AgentStep):
        return [(f"{where}.agent", step.agent)]
    if not isinstance(step, PlanStep):
        return []
    helpers = ("planner", "aggregator", "verifier")
    named = [(f"{where}.{key}", getattr(step, key)) for key in helpers]
    named += [(f"{where}.agents[{i}]", name) for i, name in enumerate(step.agents or ())]
    return [(path, name) for path, name in named if name]


def _check_model(
    services: AgentServices,
    step: AgentStep | PlanStep,
    agent: AgentSpec,
    model: str | None = None,
    provider: str | None = None,
) -> None:
    """The model an agent would call for `step` can be built: one is named somewhere, its
    provider is known, its key is set, its script exists. A bad or missing `--model` is refused
    here, before a run exists, not as a failed step."""
    who = f"step {step.id!r} (agent {agent.name!r})"
    chosen = services.model_string(agent, model, provider)
    if chosen is None:
        raise UsageError(
            f"{who} has no model: give the agent a `model:` (e.g. openai:gpt-4o-mini), the step "
            f"a `model:`, or pass --model / set {DEFAULT_MODEL_ENV}"
        )
    _known(chosen, services.config.providers, who)
    try:
        built = services.model(chosen, agent=agent.name, step=step.id)
    except UsageError as exc:
        said = str(exc)
        raise UsageError(said if f"step {step.id}" in said else f"{who}: {said}") from None
    problem = config_problem(built)
    if problem is not None:
        raise UsageError(f"{who} uses {chosen}, which cannot be called: {problem}")


def _plan_agents(step: PlanStep) -> list[str | None]:
    return [step.planner, step.aggregator, step.verifier, *(step.agents or ())]


def _check_tool_choice(step: AgentStep, agent: AgentSpec, where: str) -> None:
    """A step's `options.tool_choice` must name one of its agent's tools (as the agent's own)."""
    try:
        check_tool_choice(step.options.tool_choice if step.options else None, agent.tools)
    except ValueError as exc:
        path = f"{where}.options.tool_choice"
        raise SpecError([Problem(path, f"{exc} (agent {agent.name!r})")]) from None


def _known(model: str, providers: Mapping[str, Any], who: str) -> str:
    name = model.partition(":")[0].strip().lower()
    if not is_known_provider(name, providers):
        raise UsageError(f"{who}: {unknown_provider(name, model, providers)}")
    return name


def check_children(
    wf: Workflow,
    source: WorkflowSource,
    workspace: Path,
    services: AgentServices,
    workflows: Registry | None = None,
) -> None:
    """SpecError (each problem under the step path that leads to it) if a `workflow` step's
    target is missing, invalid, gets inputs it does not declare, or leads back to a workflow
    on its own chain; the agent steps of every child are checked like the parent's."""
    if not any(isinstance(step, WorkflowStep) for step in wf.steps):
        return
    root = file_key(Path(source), workspace) if isinstance(source, str | os.PathLike) else None
    found = check_tree(wf, workspace, registry=workflows, agents=AgentChecks(services), root=root)
    for child in found:
        check_agent_steps(child, services)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise UsageError(
            f"run id {run_id!r} is not valid: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return run_id


def check_edited_plan(
    state: RunState, step_id: str, plan: dict[str, Any], services: AgentServices
) -> None:
    """An edited plan is checked like the planner's own: SpecError with every problem."""
    spec = state.steps[step_id].spec
    assert isinstance(spec, PlanStep)
    taken = plans.history(state, state.steps[step_id]).get("taken", [])
    problems = check_plan(plan, spec, agents=services.catalog, taken=taken, policy=state.policy)
    if problems:
        raise SpecError(problems, source="edited plan", subject="plan")


class AgentChecks:
    """Checks a workflow's agent names against the catalog, and the tools those agents list
    against the built-ins and the configured MCP servers (without starting any); the catalog is
    loaded only when a workflow has agent steps."""

    def __init__(self, services: AgentServices) -> None:
        self._services = services

    def check(self, names_with_paths: Iterable[tuple[str, str]]) -> list[Problem]:
        references = list(names_with_paths)
        if not references:
            return []
        problems = self._services.catalog.check(references)
        if problems:
            return problems
        for name, path in references:
            agent = self._services.agent(name)
            for message in self._services.tool_problems(agent.tools):
                problems.append(Problem(path, f"agent {agent.name} ({agent.source}): {message}"))
        return problems
