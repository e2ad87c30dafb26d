"""Plans (SPEC F7): the JSON schema a supervisor answers with, the checks a plan must pass, and
how a plan becomes the child steps of its plan step. Pure."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from podium.errors import Problem, SpecError
from podium.spec.model import AgentStep, PlanStep
from podium.spec.validate import AgentNames, validate_workflow

CHILD_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_STEP_INDEX = re.compile(r"^steps\[(\d+)\]")

# Both schemas are in OpenAI's strict subset but for one rule: the optional properties (`summary`,
# `needs`, `reasons`) stay optional, so a reply from a server that leaves them out still fits.
# The openai adapter sends them strict (those properties required and nullable) and drops the
# nulls from the reply; tests/spec/test_plan_schema.py walks both.
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["steps"],
    "additionalProperties": False,
    "properties": {
        "summary": {"type": "string"},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "agent", "task"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": CHILD_ID},
                    "agent": {"type": "string"},
                    "task": {"type": "string"},
                    "needs": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["verdict"],
    "additionalProperties": False,
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}

AGGREGATE = "aggregate"
VERIFY = "verify"
RESERVED = frozenset({AGGREGATE, VERIFY})


def check_plan(
    plan: object,
    step: PlanStep,
    *,
    agents: AgentNames | None,
    taken: Collection[str] = (),
) -> list[Problem]:
    """Every problem with a plan (F2 checks on its steps, allowed agents, ids already used by
    earlier versions, the size cap), each with a path such as `steps[2].needs[0]`."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("steps"), list):
        return [Problem("", "a plan is an object with a `steps` list")]
    raw: list[Any] = plan["steps"]
    problems = _shape_problems(raw, step, taken)
    try:
        validate_workflow(_as_workflow(raw, taken), agents=agents)
    except SpecError as exc:
        problems += [p for p in map(_shifted(len(taken)), exc.problems) if p is not None]
    return problems


def _shape_problems(raw: list[Any], step: PlanStep, taken: Collection[str]) -> list[Problem]:
    problems = []
    if len(raw) > step.max_children:
        problems.append(
            Problem("steps", f"{len(raw)} steps; at most {step.max_children} are allowed")
        )
    allowed = {a.casefold() for a in step.agents} if step.agents is not None else None
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            problems.append(Problem(f"steps[{index}]", "each step is an object"))
            continue
        if item.get("id") in RESERVED or item.get("id") in taken:
            problems.append(
                Problem(
                    f"steps[{index}].id", f"id {item.get('id')!r} is already used; pick another"
                )
            )
        agent = item.get("agent")
        if allowed is not None and isinstance(agent, str) and agent.casefold() not in allowed:
            names = ", ".join(step.agents or [])
            problems.append(
                Problem(
                    f"steps[{index}].agent",
                    f"agent {agent!r} is not allowed here; use one of {names}",
                )
            )
    return problems


def _as_workflow(raw: Sequence[Any], taken: Collection[str]) -> dict[str, Any]:
    """The plan's steps as a workflow document (earlier children stand in as no-op steps, so a
    new step may need a completed one)."""
    steps: list[Any] = [{"id": t, "kind": "shell", "run": "true"} for t in taken]
    for item in raw:
        if isinstance(item, Mapping):
            steps.append(_child_doc(item))
        else:
            steps.append(item)
    return {"name": "plan", "steps": steps}


def _shifted(offset: int) -> Callable[[Problem], Problem | None]:
    """Renumber `steps[N]` paths past the stand-ins for earlier children; drop the stand-ins'."""

    def shift(problem: Problem) -> Problem | None:
        match = _STEP_INDEX.match(problem.path)
        if match is None or offset == 0:
            return problem
        index = int(match.group(1)) - offset
        if index < 0:
            return None
        return Problem(f"steps[{index}]{problem.path[match.end() :]}", problem.message)

    return shift


def _child_doc(item: Mapping[str, Any]) -> dict[str, Any]:
    doc = {
        "id": item.get("id"),
        "kind": "agent",
        "agent": item.get("agent"),
        "prompt": _literal(item.get("task")),
        "on_failure": "collect",
    }
    if "needs" in item:
        doc["needs"] = item["needs"]
    return doc


def _literal(text: object) -> object:
    """A planner's text is data, never a template: escape `${{` so nothing in it is evaluated."""
    return text.replace("${{", "$${{") if isinstance(text, str) else text


def children(plan: Mapping[str, Any], step: PlanStep, taken: Collection[str]) -> list[AgentStep]:
    """The child steps of a checked plan, ids namespaced under the plan step, the mode applied,
    the aggregator and verifier appended."""
    items = [dict(item) for item in plan["steps"]]
    items = _apply_mode(items, step.mode)
    out = [_namespaced(step, _child_doc(item)) for item in items]
    new_ids = [child.id for child in out]
    if step.aggregator:
        out.append(_helper(step, AGGREGATE, step.aggregator, new_ids, _aggregate_prompt(step)))
    if step.verifier:
        last = [out[-1].id] if step.aggregator else new_ids
        verdict = _helper(step, VERIFY, step.verifier, last, _verify_prompt(step))
        out.append(verdict.model_copy(update={"output": VERDICT_SCHEMA}))
    return out


def _apply_mode(items: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    if mode == "sequential":
        for before, item in itertools.pairwise(items):
            item["needs"] = [before["id"]]
    elif mode in ("parallel", "swarm"):
        for item in items:
            item["needs"] = []
        if mode == "swarm":
            agent = items[0]["agent"]
            for item in items:
                item["agent"] = agent
    return items


def _namespaced(step: PlanStep, doc: dict[str, Any]) -> AgentStep:
    child = AgentStep.model_validate(doc)
    return child.model_copy(
        update={
            "id": f"{step.id}.{child.id}",
            "needs": [f"{step.id}.{need}" for need in child.needs],
            "context_limits": step.context_limits,
        }
    )


def _helper(step: PlanStep, name: str, agent: str, needs: list[str], prompt: str) -> AgentStep:
    base = AgentStep(id=name, agent=agent, prompt=prompt, needs=[], on_failure="collect")
    return base.model_copy(
        update={"id": f"{step.id}.{name}", "needs": needs, "context_limits": step.context_limits}
    )


def _aggregate_prompt(step: PlanStep) -> str:
    return (
        f"Goal: {step.goal}\n\nThe steps of the plan have finished; their outputs follow. "
        "Synthesise them into one answer to the goal."
    )


def _verify_prompt(step: PlanStep) -> str:
    return (
        f"Goal: {step.goal}\n\nCheck whether the work below achieves the goal. Answer with a "
        'verdict: "pass", or "fail" with the reasons.'
    )
