"""The `plan` executor: a supervisor agent turns the goal into a plan (JSON), which is checked
like a workflow (F2) and handed back with its problems for a bounded number of attempts. The
runtime records the plan as an event; the core expands it into child steps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from podium.agents import AgentCatalog
from podium.errors import Problem, StepExecutionError
from podium.spec.model import AgentStep, PlanStep, StepBase
from podium.spec.plan import KIND_FIELDS, check_plan, normalised, plan_schema
from podium.spec.policy import Policy
from podium.steps._context import context_block
from podium.steps.agent import AgentExecutor, agent_services
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices

MODE_RULES = {
    "auto": "Choose the dependencies: steps run in parallel unless one `needs` another.",
    "sequential": "The steps will run one after another, in the order you list them.",
    "parallel": "The steps will all run at once: make each independent of the others.",
    "swarm": "Every step will be done by the same agent (the first step's): split the work "
    "into independent tasks for it.",
}


class PlanExecutor:
    """Runs the planning attempt of a `PlanStep`; its output is the plan."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, PlanStep):
            raise TypeError(f"PlanExecutor cannot run a {type(step).__name__}")
        catalog: AgentCatalog = agent_services(services).catalog
        policy = Policy(block_agents=list(ctx.history.get("blocked_agents") or ()))
        prompt = _prompt(step, ctx, catalog, policy)
        problems: list[Problem] = []
        plan: Any = None
        for attempt in range(1, step.max_plan_attempts + 1):
            ask = prompt if not problems else _feedback(prompt, plan, problems)
            plan = await _ask(step, ctx, services, ask)
            taken = ctx.history.get("taken", ())
            problems = check_plan(plan, step, agents=catalog, taken=taken, policy=policy)
            if not problems:
                return StepResult(normalised(plan), meta={"plan_attempts": attempt})
        listed = "; ".join(str(p) for p in problems[:5])
        raise StepExecutionError(
            f"planner {step.planner} gave no valid plan in {step.max_plan_attempts} attempts: "
            f"{listed}",
            retryable=False,
            error_type="plan",
        )


async def _ask(step: PlanStep, ctx: StepContext, services: StepServices, prompt: str) -> Any:
    supervisor = AgentStep(
        id="supervisor",
        agent=step.planner,
        prompt=prompt,
        output=plan_schema(step.kinds),
        context="none",
        max_reasks=1,
    )
    result = await AgentExecutor().execute(supervisor, ctx, services)
    return result.output


def _prompt(step: PlanStep, ctx: StepContext, catalog: AgentCatalog, policy: Policy) -> str:
    parts = [
        "Plan the work for a team of agents.",
        f"## Goal\n{step.goal}",
        "## Agents you may use (by name)\n" + _agents(step, catalog, policy),
        f"## How the plan runs\n{MODE_RULES[step.mode]}",
    ]
    if step.kinds != ["agent"]:
        parts.append(_kinds_section(step))
    if step.patterns:
        parts.append(
            "## Patterns that worked before\n" + "\n".join(f"- {p}" for p in step.patterns)
        )
    context = context_block(ctx.upstream, "auto", step.context_limits)
    if context:
        parts.append(context)
    if ctx.history.get("versions"):
        parts.append(_replan_section(ctx.history))
    fields = "`agent`, `task` (self-contained instructions)"
    if step.kinds != ["agent"]:
        fields = "`kind` and that kind's fields"
    parts.append(
        "## Answer\nReply with JSON only: an object with `summary` and `steps`; each step has "
        f"`id` (letters, digits, _ or -), {fields} and optionally `needs` (ids of steps whose "
        f"results it uses). At most {step.max_children} steps."
    )
    return "\n\n".join(parts)


def _kinds_section(step: PlanStep) -> str:
    """The step kinds the plan may use, each with its fields."""
    lines = ["## Step kinds you may use (`kind`)"]
    for kind in step.kinds:
        fields, required = KIND_FIELDS[kind]
        listed = ", ".join(f"`{f}`" + ("" if f in required else " (optional)") for f in fields)
        lines.append(f"- {kind}: {listed}")
    lines.append(
        "Shell commands, file writes, HTTP requests other than GET and sub-workflows may wait "
        "for a person's approval before they run."
    )
    return "\n".join(lines)


def _agents(step: PlanStep, catalog: AgentCatalog, policy: Policy) -> str:
    helpers = {step.planner, step.aggregator, step.verifier}
    names = step.agents or [n for n in catalog.names() if n not in helpers]
    names = [n for n in names if not policy.blocks(n)]
    lines = []
    for name in names:
        agent = catalog.resolve(name)
        lines.append(f"- {agent.name}: {agent.description or 'no description'}")
    return "\n".join(lines) or "- (none)"


def _replan_section(history: Mapping[str, Any]) -> str:
    versions = history["versions"]
    failures = history.get("failures", {})
    completed = history.get("completed", {})
    return "\n".join(
        [
            f"## Replanning (plan version {len(versions) + 1})",
            "The previous plan did not succeed. Plan the remaining work; do not repeat what is "
            "completed (you may list completed step ids in `needs` to use their results), and "
            "do not reuse any id already taken.",
            f"Previous plan:\n{json.dumps(versions[-1], indent=2, sort_keys=True)}",
            "Failures:\n" + "\n".join(f"- {k}: {v}" for k, v in failures.items()),
            "Completed:\n"
            + "\n".join(f"- {k}: {_short(v)}" for k, v in completed.items())
            + ("" if completed else "- (nothing yet)"),
            "Ids already taken: " + ", ".join(history.get("taken", [])),
        ]
    )


def _short(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def _feedback(prompt: str, plan: Any, problems: list[Problem]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    previous = json.dumps(plan, indent=2, sort_keys=True, default=str)
    return (
        f"{prompt}\n\n## Your previous answer had problems\n{listed}\n\nIt was:\n{previous}\n\n"
        "Fix every problem and reply with the whole corrected plan."
    )
