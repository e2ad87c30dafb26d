"""Validation before anything runs (F2): every schema, graph and template problem with its path."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from podium.errors import Problem, SpecError
from podium.spec.inputs import (
    INPUT_TYPES,
    coerce_inputs,
    describe,
    parse_input_pairs,
    type_problem,
)
from podium.spec.model import (
    MAX_STEPS,
    MODEL_EXAMPLES,
    PLANNED_KINDS,
    STEP_TYPES,
    AgentStep,
    InputSpec,
    LoopStep,
    Quorum,
    RetryPolicy,
    StepBase,
    Workflow,
)
from podium.spec.policy import ApprovalRules, Policy
from podium.spec.secrets import secret_problems
from podium.spec.semantics import did_you_mean, graph_problems

__all__ = ["coerce_inputs", "parse_input_pairs", "validate_workflow"]

_KINDS = ", ".join(sorted(STEP_TYPES))
_NESTED: dict[str, type[BaseModel]] = {"retry": RetryPolicy, "join": Quorum}
_SHAPES = {
    "join": 'expected "all", "any" or {quorum: N} with N at least 1',
    "output": 'expected "text", "json" or a JSON schema (a mapping)',
    "run": "expected a command line (text) or a list of arguments",
    "retry": "expected a number of attempts or a mapping such as {max_attempts: 3}",
    "needs": "expected a step id or a list of step ids",
    "inputs": "expected a mapping of input names to {type, default, description}",
}
_TYPE_NAMES = {
    type(None): "nothing",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}
_PATTERN_RULES = {
    "model": f"must be provider:model without spaces, such as {MODEL_EXAMPLES} (only the model "
    "when `options.provider` names the provider)",
    "provider": 'must be a provider name: lowercase letters, digits, "_" and "-", starting with a '
    "letter (openai, anthropic or one configured in podium.toml [providers])",
    "tool_choice": 'must be auto, none, required or a tool name (letters, digits, "_", ":", "/" '
    'and "-"; at most 128 characters)',
}
_STEP_PATH = re.compile(r"^steps\[(\d+)\]")
_STEPS_PATH = re.compile(r"^steps(\[|$)")
_SHOULD = re.compile(r"^(Input|String|List|Dictionary|Value|Tuple|Set|Object) should ")
_ID_RULE = (
    'step ids start with a letter or "_" and contain only letters, digits, "_" and "-" '
    "(at most 128 characters)"
)


class AgentNames(Protocol):
    """What validation needs from an agent catalog: a problem for each name that does not
    resolve (missing: the available names; ambiguous: the candidates)."""

    def check(self, names_with_paths: Iterable[tuple[str, str]]) -> list[Problem]: ...


def validate_workflow(
    doc: object, *, source: str | None = None, agents: AgentNames | None = None
) -> Workflow:
    """The validated Workflow, or a SpecError listing every problem found. With `agents`, the
    agent names that agent steps use are checked against that catalog too."""
    if not isinstance(doc, Mapping):
        problem = Problem("", "the document must be a mapping with name and steps")
        raise SpecError([problem], source=source)
    raw_steps = doc.get("steps")
    if isinstance(raw_steps, list) and len(raw_steps) > MAX_STEPS:
        message = (
            f"{len(raw_steps):,} steps; the limit is {MAX_STEPS:,}; split the workflow into "
            "several workflows run one after another, or let one shell or python step work "
            "through many items in a loop of its own"
        )
        raise SpecError([Problem("steps", message)], source=source)
    problems: list[Problem] = []
    steps, readable = _check_steps(raw_steps, problems)
    workflow = _check_top(doc, [step for _, step in steps], problems)
    problems += _default_problems(doc.get("inputs")) + secret_problems(dict(doc))
    problems += graph_problems(readable, _raw_ids(raw_steps), _input_names(doc.get("inputs")))
    if agents is not None:
        problems += agents.check(agent_references(readable))
    if problems or workflow is None:
        raise SpecError(sorted(problems, key=_step_order), source=source)
    return workflow


def agent_references(
    indexed: Iterable[tuple[int, StepBase]], prefix: str = ""
) -> list[tuple[str, str]]:
    """(agent name, path) for every agent step among (document index, step) pairs, loop
    bodies included."""
    found: list[tuple[str, str]] = []
    for index, step in indexed:
        if isinstance(step, AgentStep):
            found.append((step.agent, f"{prefix}steps[{index}].agent"))
        elif isinstance(step, LoopStep):
            found += agent_references(enumerate(step.steps), f"{prefix}steps[{index}].")
    return found


def _step_order(problem: Problem) -> int:
    """Workflow-level problems first, then each step's problems together, in document order."""
    match = _STEP_PATH.match(problem.path)
    return int(match.group(1)) if match else -1


# --- schema -------------------------------------------------------------------------------------


Indexed = list[tuple[int, StepBase]]


def _check_steps(
    raw_steps: object, problems: list[Problem], prefix: str = ""
) -> tuple[Indexed, Indexed]:
    """The valid steps, and the readable ones: the valid steps and those whose problems are in
    fields they can do without, read without those fields, so that their needs, templates and
    agents are checked too (one schema error does not hide the rest). `prefix` is a loop
    body's path (`steps[3].`)."""
    if not isinstance(raw_steps, list):
        return [], []
    steps: Indexed = []
    readable: Indexed = []
    for index, raw in enumerate(raw_steps):
        step, salvaged = _check_step(index, raw, problems, prefix)
        if step is not None:
            steps.append((index, step))
        if (chosen := step if step is not None else salvaged) is not None:
            readable.append((index, chosen))
    return steps, readable


def _check_step(
    index: int, raw: object, problems: list[Problem], prefix: str = ""
) -> tuple[StepBase | None, StepBase | None]:
    """The valid step, or None and the step read without the fields that have problems."""
    where = f"{prefix}steps[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"expected a mapping with id and kind, got {_type(raw)}"))
        return None, None
    step_type = _step_type(raw, where, problems)
    if step_type is None:
        return None, None
    if step_type is LoopStep:
        return _check_loop(raw, where, problems)
    try:
        return step_type.model_validate(raw), None
    except ValidationError as exc:
        found = _schema_problems(exc, raw, where, step_type)
        problems += found
        return None, _salvage(step_type, raw, found, where)


def _check_loop(
    raw: Mapping[str, Any], where: str, problems: list[Problem]
) -> tuple[StepBase | None, StepBase | None]:
    """A loop step: its body's steps are checked one by one like the workflow's (paths such
    as `steps[3].steps[1].run`), then the loop's own fields around the readable body."""
    found: list[Problem] = []
    raw_body = raw.get("steps")
    body, readable = _check_steps(raw_body, found, f"{where}.")
    doc = {**raw}
    # the body's graph is checked by position: only a body read whole lines up with the document
    whole = isinstance(raw_body, list) and len(readable) == len(raw_body)
    if whole and raw_body:
        doc["steps"] = [step for _, step in (readable if found else body)]
    if raw.get("max_iterations") is None:
        bound = LoopStep.model_fields["max_iterations"].metadata
        found.append(Problem(f"{where}.max_iterations", _unbounded(bound)))
        doc["max_iterations"] = 1  # read the rest as if it were bounded
    try:
        step = LoopStep.model_validate(doc)
    except ValidationError as exc:
        mine = _schema_problems(exc, doc, where, LoopStep)
        body_paths = f"{where}.steps"
        problems += found + [p for p in mine if not (found and p.path.startswith(body_paths))]
        return None, _salvage_loop(doc, mine, where) if whole else None
    problems += found
    return (None, step) if found else (step, None)


def _salvage_loop(doc: dict[str, Any], found: list[Problem], where: str) -> StepBase | None:
    """The loop read without its bad fields (a bad bound read as 1), to check its body."""
    bad = {_top_field(problem.path, where) for problem in found}
    if "" in bad or "steps" in bad:
        return None
    kept = {k: v for k, v in doc.items() if k not in bad}
    try:
        return LoopStep.model_validate({**kept, "max_iterations": kept.get("max_iterations", 1)})
    except ValidationError:
        return None


def _unbounded(metadata: list[Any]) -> str:
    top = next((m.le for m in metadata if getattr(m, "le", None) is not None), None)
    return (
        f"a loop needs a bound: set max_iterations (1 to {top:,}); without one it could repeat "
        "forever"
    )


def _salvage(
    step_type: type[StepBase], raw: Mapping[str, Any], found: list[Problem], where: str
) -> StepBase | None:
    bad = {_top_field(problem.path, where) for problem in found}
    if "" in bad:
        return None  # a problem of the step as a whole: nothing to read without
    try:
        return step_type.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return None


def _top_field(path: str, where: str) -> str:
    """`run` for `steps[2].run[0]` under `steps[2]`; empty for the step itself."""
    rest = path.removeprefix(where).removeprefix(".")
    return re.split(r"[.\[]", rest, maxsplit=1)[0]


def _step_type(
    raw: Mapping[str, Any], where: str, problems: list[Problem]
) -> type[StepBase] | None:
    kind = raw.get("kind")
    if isinstance(kind, str) and kind in STEP_TYPES:
        return STEP_TYPES[kind]
    if "kind" not in raw:
        message = f"missing; every step needs a kind, one of {_KINDS}"
    elif kind in PLANNED_KINDS:
        message = f'kind "{kind}" is not available yet in this version; use one of {_KINDS}'
    elif isinstance(kind, str):
        message = f'unknown kind "{kind}"{did_you_mean(kind, STEP_TYPES)}; expected one of {_KINDS}'
    else:
        message = f"expected one of {_KINDS}, got {_type(kind)}"
    problems.append(Problem(f"{where}.kind", message))
    return None


def _check_top(
    doc: Mapping[str, Any], steps: list[StepBase], problems: list[Problem]
) -> Workflow | None:
    """Validate the fields outside `steps`; the already validated steps are passed through."""
    raw_steps = doc.get("steps")
    owned = isinstance(raw_steps, list) and len(raw_steps) > 0
    try:
        return Workflow.model_validate({**doc, "steps": steps} if owned else doc)
    except ValidationError as exc:
        found = _schema_problems(exc, doc, "", Workflow)
        problems += [p for p in found if not (owned and _STEPS_PATH.match(p.path))]
        return None


def _schema_problems(
    error: ValidationError, data: object, prefix: str, model: type[BaseModel]
) -> list[Problem]:
    """Pydantic's errors as problems with `steps[3].retry.max_attempts`-style paths."""
    grouped: dict[tuple[str | int, ...], list[ErrorDetails]] = {}
    for detail in error.errors(include_url=False):
        grouped.setdefault(_clean_loc(detail, data), []).append(detail)
    return [
        Problem(_join_path(prefix, parts), _message(parts, details, model))
        for parts, details in grouped.items()
    ]


def _clean_loc(detail: ErrorDetails, data: object) -> tuple[str | int, ...]:
    """Follow `loc` through the input, stopping at pydantic's union tags (`literal[...]`, `str`)."""
    parts: list[str | int] = []
    node = data
    for position, part in enumerate(detail["loc"]):
        if _holds(node, part):
            node = node[part]  # type: ignore[index]
        elif detail["type"] != "missing" or position < len(detail["loc"]) - 1:
            break
        parts.append(part)
    return tuple(parts)


def _holds(node: object, part: str | int) -> bool:
    if isinstance(node, Mapping):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _join_path(prefix: str, parts: Iterable[str | int]) -> str:
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(
    parts: Sequence[str | int], details: list[ErrorDetails], model: type[BaseModel]
) -> str:
    field = parts[-1] if parts else ""
    shape = _SHAPES.get(field) if isinstance(field, str) else None
    if shape and (len(details) > 1 or details[0]["type"].endswith("_type")):
        return f"{shape}, got {_shown(details[0]['input'])}"
    messages = dict.fromkeys(_friendly(detail, parts, model) for detail in details)
    return "; or ".join(messages)


def _friendly(detail: ErrorDetails, parts: Sequence[str | int], model: type[BaseModel]) -> str:
    kind, text = detail["type"], detail["msg"]
    if kind == "extra_forbidden":
        return _unknown_field(str(parts[-1]), _allowed_fields(parts, model))
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and parts == ("id",):
        return f"{_ID_RULE}, got {_shown(detail['input'])}"
    if kind == "string_pattern_mismatch":
        rule = _PATTERN_RULES.get(str(parts[-1]) if parts else "", "has a form not allowed here")
        return f"{rule}, got {_shown(detail['input'])}"
    if kind == "too_short" and parts == ("steps",):
        return "a workflow needs at least one step"
    text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text = _SHOULD.sub("must ", text).replace(" after validation", "")
    if kind in ("value_error", "assertion_error"):
        return text
    return f"{text}, got {_shown(detail['input'])}"


def _unknown_field(name: str, allowed: list[str]) -> str:
    listing = f"; allowed: {', '.join(allowed)}" if allowed else ""
    return f'unknown field "{name}"{did_you_mean(name, allowed) or listing}'


def _allowed_fields(parts: Sequence[str | int], model: type[BaseModel]) -> list[str]:
    if len(parts) == 1:
        fields: Collection[str] = model.model_fields
    elif len(parts) == 2 and isinstance(parts[0], str) and parts[0] in _NESTED:
        fields = _NESTED[parts[0]].model_fields
    elif len(parts) == 3 and model is Workflow and parts[0] == "inputs":
        fields = InputSpec.model_fields
    elif model is Workflow and parts[0] == "policy":
        fields = ApprovalRules.model_fields if parts[1:2] == ("approve",) else Policy.model_fields
    else:
        fields = ()
    return sorted(fields)


def _shown(value: object) -> str:
    text = f'"{value}"' if isinstance(value, str) else describe(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type(value: object) -> str:
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


# --- inputs and ids -----------------------------------------------------------------------------


def _default_problems(raw_inputs: object) -> list[Problem]:
    """Defaults that do not match their declared type (other input errors are schema errors)."""
    if not isinstance(raw_inputs, Mapping):
        return []
    problems = []
    for name, spec in raw_inputs.items():
        if not isinstance(spec, Mapping) or spec.get("default") is None:
            continue
        kind = spec.get("type", "string")
        if kind == "secret":
            message = "a secret input has no default (it would be stored); pass it or set its env"
            problems.append(Problem(f"inputs.{name}.default", message))
        elif kind in INPUT_TYPES and (problem := type_problem(kind, spec["default"])):
            message = f"{problem}; change the default or the type"
            problems.append(Problem(f"inputs.{name}.default", message))
    return problems


def _input_names(raw_inputs: object) -> set[str]:
    return {str(name) for name in raw_inputs} if isinstance(raw_inputs, Mapping) else set()


def _raw_ids(raw_steps: object) -> dict[str, list[int]]:
    """Every step id in document order, with the indexes that use it (even for invalid steps)."""
    ids: dict[str, list[int]] = {}
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(raw, Mapping) and isinstance(step_id := raw.get("id"), str):
            ids.setdefault(step_id, []).append(index)
    return ids
