"""Plans (SPEC F7): the JSON schema a supervisor answers with, the checks a plan must pass, and
how a plan becomes the child steps of its plan step. Pure."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from podium.errors import Problem, SpecError
from podium.spec.model import STEP_TYPES, AgentStep, PlanStep, StepBase
from podium.spec.policy import Policy, blocked_problem
from podium.spec.validate import AgentNames, validate_workflow

CHILD_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_STEP_INDEX = re.compile(r"^steps\[(\d+)\]")

# The fields a planner gives a child of each kind it may generate (`PlanStep.kinds`), and the
# ones it must give. `task` is an agent's prompt; the others are the step kind's own fields. No
# enums: an optional field goes nullable in the strict form, and a null is not in an enum
# (`check_plan` checks the values as it checks a written step's).
KIND_FIELDS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "agent": ({"agent": {"type": "string"}, "task": {"type": "string"}}, ("agent", "task")),
    "shell": ({"run": {"type": "string"}}, ("run",)),
    "http": (
        {
            "method": {"type": "string", "description": "GET, HEAD, POST, PUT, PATCH or DELETE"},
            "url": {"type": "string"},
            "body": {"type": "string"},
        },
        ("method", "url"),
    ),
    "file": (
        {
            "op": {"type": "string", "description": "read, write or append"},
            "path": {"type": "string"},
            "content": {"type": "string"},
        },
        ("op", "path"),
    ),
    # a child run of a workflow file (relative to the workspace) or a registered name, with its
    # inputs' defaults (a mapping of any keys is not in the strict subset)
    "workflow": ({"workflow": {"type": "string"}}, ("workflow",)),
}
_FIELD_NAMES = frozenset(name for fields, _ in KIND_FIELDS.values() for name in fields)
_COMMON = frozenset({"id", "kind", "needs"})


def plan_schema(kinds: Sequence[str] = ("agent",)) -> dict[str, Any]:
    """The JSON schema a planner answers with when it may generate steps of `kinds`. For agent
    steps alone it is the plain `{id, agent, task, needs}` item; with more kinds each item also
    names its `kind` and carries that kind's fields (one flat object: every field optional but
    `id` and `kind`, so it stays in the strict subset; `check_plan` checks each kind's)."""
    chosen = [k for k in KIND_FIELDS if k in kinds]
    properties: dict[str, Any] = {"id": {"type": "string", "pattern": CHILD_ID}}
    if chosen != ["agent"]:
        properties["kind"] = {"type": "string", "enum": chosen}
    for kind in chosen:
        properties.update(KIND_FIELDS[kind][0])
    properties["needs"] = {"type": "array", "items": {"type": "string"}}
    if len(chosen) == 1:
        required = ["id", *([] if chosen == ["agent"] else ["kind"]), *KIND_FIELDS[chosen[0]][1]]
    else:
        required = ["id", "kind"]
    item = {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }
    return {
        "type": "object",
        "required": ["steps"],
        "additionalProperties": False,
        "properties": {
            "summary": {"type": "string"},
            "steps": {"type": "array", "minItems": 1, "items": item},
        },
    }


# Both schemas are in OpenAI's strict subset but for one rule: the optional properties (`summary`,
# `needs`, `reasons`, a kind's fields) stay optional, so a reply from a server that leaves them out
# still fits. The openai adapter sends them strict (those properties required and nullable) and
# drops the nulls from the reply; tests/spec/test_plan_schema.py walks both.
PLAN_SCHEMA: dict[str, Any] = plan_schema()

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
    policy: Policy | None = None,
) -> list[Problem]:
    """Every problem with a plan (F2 checks on its steps, allowed kinds and agents, agents the
    `policy` blocks, ids already used by earlier versions, the size cap), each with a path such
    as `steps[2].needs[0]`."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("steps"), list):
        return [Problem("", "a plan is an object with a `steps` list")]
    raw = [_present(item) for item in plan["steps"]]
    problems = _shape_problems(raw, step, taken, policy or Policy())
    try:
        validate_workflow(_as_workflow(raw, step, taken), agents=agents)
    except SpecError as exc:
        problems += [p for p in map(_shifted(len(taken)), exc.problems) if p is not None]
    return problems


def _present(item: object) -> object:
    """An item without the fields it left null (a strict-mode reply sends every field)."""
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if v is not None}
    return item


def normalised(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A checked plan as recorded: its summary and each step's own fields (nulls left out)."""
    keep = _COMMON | _FIELD_NAMES
    steps = [
        {k: v for k, v in item.items() if k in keep and v is not None} for item in plan["steps"]
    ]
    return {"summary": str(plan.get("summary") or ""), "steps": steps}


def _shape_problems(
    raw: list[Any], step: PlanStep, taken: Collection[str], policy: Policy
) -> list[Problem]:
    problems = []
    if len(raw) > step.max_children:
        problems.append(
            Problem("steps", f"{len(raw)} steps; at most {step.max_children} are allowed")
        )
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
        if "allow_untrusted" in item:
            problems.append(
                Problem(
                    f"steps[{index}].allow_untrusted",
                    "a planner cannot let its steps run untrusted text unasked; leave "
                    "`allow_untrusted` out (only a written workflow may set it)",
                )
            )
        problems += _kind_problems(index, item, step)
        problems += _agent_problems(index, item, step, policy)
    return problems


def _kind_problems(index: int, item: Mapping[str, Any], step: PlanStep) -> list[Problem]:
    """A kind the plan step does not allow, or fields that belong to another kind."""
    kind = item.get("kind", "agent")
    if kind not in step.kinds:
        allowed = ", ".join(step.kinds)
        return [
            Problem(f"steps[{index}].kind", f"kind {kind!r} is not allowed here; use {allowed}")
        ]
    own = KIND_FIELDS[kind][0]
    problems = [
        Problem(
            f"steps[{index}].{name}",
            f"a {kind} step takes no {name}; its fields are {', '.join(own)}",
        )
        for name in item
        if name in _FIELD_NAMES and name not in own
    ]
    if kind == "shell" and "sandbox" in item:
        problems.append(
            Problem(
                f"steps[{index}].sandbox",
                "a planner's shell step always runs in the sandbox; leave `sandbox` out (only "
                "a written workflow or the project configuration may turn it off)",
            )
        )
    return problems


def _agent_problems(
    index: int, item: Mapping[str, Any], step: PlanStep, policy: Policy
) -> list[Problem]:
    agent = item.get("agent")
    if item.get("kind", "agent") != "agent" or not isinstance(agent, str):
        return []
    where = f"steps[{index}].agent"
    if policy.blocks(agent):
        return [blocked_problem(agent, where)]
    allowed = {a.casefold() for a in step.agents} if step.agents is not None else None
    if allowed is not None and agent.casefold() not in allowed:
        names = ", ".join(step.agents or [])
        return [Problem(where, f"agent {agent!r} is not allowed here; use one of {names}")]
    return []


def _as_workflow(raw: Sequence[Any], step: PlanStep, taken: Collection[str]) -> dict[str, Any]:
    """The plan's steps as a workflow document (earlier children stand in as no-op steps, so a
    new step may need a completed one; so does an item of a kind not allowed, already reported,
    so that its id and needs are still checked)."""
    steps: list[Any] = [{"id": t, "kind": "shell", "run": "true"} for t in taken]
    for item in raw:
        if isinstance(item, Mapping) and item.get("kind", "agent") not in step.kinds:
            needs = {"needs": item["needs"]} if "needs" in item else {}
            steps.append({"id": item.get("id"), "kind": "shell", "run": "true", **needs})
        elif isinstance(item, Mapping):
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
    """A plan item as a step document: an agent's `task` is its prompt; every text the planner
    wrote is data (escaped), whatever the kind."""
    kind = item.get("kind", "agent")
    doc: dict[str, Any] = {"id": item.get("id"), "kind": kind, "on_failure": "collect"}
    if kind == "agent":
        doc |= {"agent": item.get("agent"), "prompt": _literal(item.get("task"))}
    else:
        own = KIND_FIELDS.get(kind, ({}, ()))[0]
        doc |= {name: _literal(item[name]) for name in own if name in item}
    if "needs" in item:
        doc["needs"] = item["needs"]
    return doc


def item_summary(item: Mapping[str, Any]) -> tuple[str, str]:
    """Who does a plan item and what, for people: `(agent, task)` for an agent's, `(kind, its
    first field)` for another kind's (`("shell", "wc -w notes.txt")`)."""
    kind = str(item.get("kind", "agent"))
    if kind == "agent":
        return str(item.get("agent")), str(item.get("task"))
    required = KIND_FIELDS.get(kind, ({}, ()))[1]
    return kind, " ".join(str(item[name]) for name in required if name in item)


def _literal(text: object) -> object:
    """A planner's text is data, never a template: escape `${{` so nothing in it is evaluated."""
    return text.replace("${{", "$${{") if isinstance(text, str) else text


def children(plan: Mapping[str, Any], step: PlanStep, taken: Collection[str]) -> list[StepBase]:
    """The child steps of a checked plan, ids namespaced under the plan step, the mode applied,
    the aggregator and verifier appended."""
    items = [{k: v for k, v in item.items() if v is not None} for item in plan["steps"]]
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
        agents = [item for item in items if item.get("kind", "agent") == "agent"]
        if mode == "swarm" and agents:
            for item in agents:
                item["agent"] = agents[0]["agent"]
    return items


def _namespaced(step: PlanStep, doc: dict[str, Any]) -> StepBase:
    child = STEP_TYPES[doc["kind"]].model_validate(doc)
    update: dict[str, Any] = {
        "id": f"{step.id}.{child.id}",
        "needs": [f"{step.id}.{need}" for need in child.needs],
    }
    if isinstance(child, AgentStep):
        update["context_limits"] = step.context_limits
    return child.model_copy(update=update)


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
