"""docs/reference.md, generated from the models: every field of the workflow document and of each
step kind, the plan and verdict JSON, the scripted-model script, the built-in tools and the limits.
`python -m podium.reference > docs/reference.md` (or `make reference`) writes it; a test fails
when the committed page differs."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from podium.agents import AgentOptions
from podium.config import SecretsConfig
from podium.errors import MAX_PROBLEMS_LISTED
from podium.llm import _script_file as script_file
from podium.reference._text import FIELDS, IDEMPOTENT_NOTES, MODEL_NOTES, SCRIPT_KEYS
from podium.spec import expr, load
from podium.spec.files import FilePolicy
from podium.spec.model import (
    DEFAULT_OUTPUT_LIMIT_BYTES,
    MAX_STEPS,
    STEP_ID_PATTERN,
    STEP_TYPES,
    Budget,
    ContextLimits,
    HistoryMessage,
    InputSpec,
    Quorum,
    RetryPolicy,
    StepBase,
    Workflow,
)
from podium.spec.network import NetworkPolicy
from podium.spec.plan import CHILD_ID, PLAN_SCHEMA, RESERVED, VERDICT_SCHEMA
from podium.spec.policy import ApprovalRules, Policy
from podium.spec.routing import RoutingConfig, RoutingRule, ThreadsConfig
from podium.tools import builtin
from podium.tools.base import Tool

README = Path(__file__).resolve().parents[3] / "README.md"
NESTED: tuple[type[BaseModel], ...] = (
    InputSpec,
    RetryPolicy,
    Quorum,
    Budget,
    Policy,
    ApprovalRules,
    NetworkPolicy,
    FilePolicy,
    ContextLimits,
    HistoryMessage,
    AgentOptions,
    RoutingConfig,
    RoutingRule,
    ThreadsConfig,
    SecretsConfig,
)
CONSTRAINTS = {
    "gt": "> {}",
    "ge": "≥ {}",
    "lt": "< {}",
    "le": "≤ {}",
    "min_length": "at least {} long",
    "max_length": "at most {} long",
    "pattern": "matches `{}`",
}


class ReferenceError(Exception):
    """The models and the descriptions in `_text.py` disagree."""


def render() -> str:
    """The whole page."""
    used: set[str] = set()
    parts = [*_intro(), *_workflow(used), *_steps(used), *_nested(used)]
    parts += [*_plans(), *_script(), *_tools(), *_limit_section(), *_workspace()]
    unused = sorted(set(FIELDS) - used)
    if unused:
        raise ReferenceError(f"descriptions of fields that do not exist: {', '.join(unused)}")
    return "\n".join(parts).rstrip() + "\n"


def _intro() -> Iterator[str]:
    yield "# Podium reference"
    yield ""
    yield (
        "Generated from the models by `make reference` (`python -m podium.reference`); do not "
        "edit by hand. The README explains; this page lists."
    )
    yield ""
    yield "Durations are seconds (`30`, `2.5`) or text with a unit: `500ms`, `30s`, `5m`, `1h`."
    yield ""


# ------------------------------------------------------------------------------------- fields


def _table(model: type[BaseModel], used: set[str], skip: Mapping[str, Any] = {}) -> Iterator[str]:
    yield "| field | type | default | limits | meaning |"
    yield "| --- | --- | --- | --- | --- |"
    for name, info in model.model_fields.items():
        if name in skip or name == "kind":
            continue
        row = [f"`{name}`", _type(info.annotation), _default(info), _constraints(info)]
        yield "| " + " | ".join([*row, _description(model, name, info, used)]) + " |"
    yield ""


def _description(model: type[BaseModel], name: str, info: FieldInfo, used: set[str]) -> str:
    owner = next(k for k in model.__mro__ if name in getattr(k, "__annotations__", {}))
    key = f"{'AgentOptions' if model is AgentOptions else owner.__name__}.{name}"
    used.add(key)
    text = info.description or FIELDS.get(key)
    if text is None:
        where = "podium/reference/_text.py"
        raise ReferenceError(f"field {key} has no description; add one to {where}")
    return _cell(text)


def _type(annotation: Any) -> str:
    return _cell(_type_text(annotation))


def _type_text(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (Union, types.UnionType):
        shown = [_type_text(a) for a in args if a is not type(None)]
        return " or ".join(shown) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"mapping of {_type_text(args[0])} to {_type_text(args[1])}"
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):
        return _type_text(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {str: "text", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, "any")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        return "see below" if isinstance(made, BaseModel) else f"`{json.dumps(made)}`"
    if info.default is PydanticUndefined:
        return "**required**"
    return _cell(f"`{json.dumps(info.default)}`")


def _constraints(info: FieldInfo) -> str:
    found = []
    for meta in info.metadata:
        for attr, form in CONSTRAINTS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(form.format(f"{value:,}" if isinstance(value, int) else value))
    return _cell(", ".join(found))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text


# ----------------------------------------------------------------------------------- sections


def _workflow(used: set[str]) -> Iterator[str]:
    yield "## The workflow document"
    yield ""
    yield f"{Workflow.__doc__} A YAML or JSON file with these top-level keys:"
    yield ""
    yield from _table(Workflow, used)


def _steps(used: set[str]) -> Iterator[str]:
    yield "## Every step"
    yield ""
    yield f"Every step has `kind` (one of {', '.join(f'`{k}`' for k in STEP_TYPES)}) and:"
    yield ""
    yield from _table(StepBase, used)
    for kind, model in STEP_TYPES.items():
        yield f"## `{kind}` steps"
        yield ""
        yield " ".join((model.__doc__ or "").split())
        idempotent = _idempotent(kind, model)
        yield ""
        yield (
            f"Idempotent by default: {idempotent}. Templated fields: "
            + (", ".join(f"`{f}`" for f in model.templated) or "none")
            + "."
        )
        yield ""
        yield from _table(model, used, skip=StepBase.model_fields)


def _idempotent(kind: str, model: type[StepBase]) -> str:
    depends = model.is_idempotent is not StepBase.is_idempotent
    if depends != (kind in IDEMPOTENT_NOTES):
        raise ReferenceError(f"say in IDEMPOTENT_NOTES whether {kind} steps' default depends")
    return IDEMPOTENT_NOTES.get(kind) or ("yes" if model.default_idempotent else "no")


def _nested(used: set[str]) -> Iterator[str]:
    for model in NESTED:
        yield f"## {model.__name__}"
        yield ""
        yield " ".join((model.__doc__ or MODEL_NOTES[model.__name__]).split())
        yield ""
        yield from _table(model, used)


def _schema_rows(schema: Mapping[str, Any]) -> Iterator[str]:
    required = set(schema.get("required", ()))
    yield "| key | type | required | limits |"
    yield "| --- | --- | --- | --- |"
    for key, prop in schema["properties"].items():
        kind = prop.get("type")
        if "enum" in prop:
            kind = " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
        elif kind == "array":
            kind = f"list of {prop['items'].get('type', 'object')}"
        limits = [f"matches `{prop['pattern']}`"] if "pattern" in prop else []
        limits += [f"at least {prop['minItems']} item"] if "minItems" in prop else []
        yield f"| `{key}` | {kind} | {'yes' if key in required else 'no'} | {', '.join(limits)} |"
    yield ""


def _plans() -> Iterator[str]:
    step = PLAN_SCHEMA["properties"]["steps"]["items"]
    example = {
        "summary": "two facts, then a draft",
        "steps": [
            {"id": "facts", "agent": "researcher", "task": "List the facts."},
            {"id": "draft", "agent": "writer", "task": "Write it up.", "needs": ["facts"]},
        ],
    }
    yield "## Plans (`podium approve RUN --edit FILE`)"
    yield ""
    yield (
        "A planner answers, and `approve --edit` takes (as JSON or YAML), an object with these "
        "keys; no others are allowed:"
    )
    yield ""
    yield from _schema_rows(PLAN_SCHEMA)
    yield "Each item of `steps`:"
    yield ""
    yield from _schema_rows(step)
    reserved = ", ".join(f"`{r}`" for r in sorted(RESERVED))
    yield (
        f"Ids are unique, match `{CHILD_ID}`, and are not {reserved} or an id an earlier "
        "version of the plan used; `needs` names other ids of the plan (or earlier children); "
        "`agent` must be in the plan step's `agents` when it lists them; a plan has at most the "
        "plan step's `max_children` steps. A child runs as step `<plan step>.<id>`, an `agent` "
        "step whose prompt is `task` (taken literally: `${{` is not a template there)."
    )
    yield ""
    yield "```json\n" + json.dumps(example, indent=2) + "\n```"
    yield ""
    yield "## Verdicts"
    yield ""
    yield (
        "A plan step's `verifier` answers with this object (the `verify` child's `output` "
        "schema); `fail` makes the plan step replan while `max_replans` allow, else fail with "
        "the reasons:"
    )
    yield ""
    yield from _schema_rows(VERDICT_SCHEMA)


def _script() -> Iterator[str]:
    sets = {
        "top": script_file._TOP_KEYS,
        "agent": script_file._AGENT_KEYS,
        "turn": script_file._TURN_KEYS,
        "call": script_file._CALL_KEYS,
        "error": script_file._ERROR_KEYS,
        "usage": script_file._USAGE_KEYS,
    }
    titles = {
        "top": "The document",
        "agent": "An agent's (or a step's) entry: a list of turns, or a mapping",
        "turn": "A turn: a string (its content), or a mapping",
        "call": "A tool call",
        "error": "An error",
        "usage": "Usage",
    }
    yield "## Scripted-model scripts (`--model scripted:FILE`)"
    yield ""
    yield (
        "A YAML (or `.json`) file that the offline `scripted` model replays; `podium script RUN` "
        "writes one from a recorded run."
    )
    yield ""
    for where, keys in sets.items():
        described = SCRIPT_KEYS[where]
        if set(described) != set(keys):
            raise ReferenceError(f"script keys of {where} differ: {sorted(keys)} in the parser")
        yield f"{titles[where]}:"
        yield ""
        yield "| key | meaning |"
        yield "| --- | --- |"
        yield from (f"| `{key}` | {_cell(described[key])} |" for key in sorted(keys))
        yield ""
    yield "```yaml"
    yield "agents:\n  researcher:"
    yield "    - tool_calls: [{name: read_file, arguments: {path: notes.md}}]"
    yield "    - content: Three facts.\n  '*':\n    turns: [Done.]\n    repeat_last: true"
    yield "```"
    yield ""


def _tools() -> Iterator[str]:
    tools: dict[str, Tool] = builtin.builtin_tools(lambda kind: NotImplemented)
    yield "## Built-in tools"
    yield ""
    yield "An agent lists them under `tools:` (beside `mcp:<server>` and `mcp:<server>/<tool>`)."
    yield ""
    yield "| tool | does | arguments | read-only |"
    yield "| --- | --- | --- | --- |"
    for name, tool in tools.items():
        props = tool.spec.parameters.get("properties", {})
        described = (f"`{k}`: {v.get('description', '').rstrip('.')}" for k, v in props.items())
        arguments = "; ".join(described)
        read_only = getattr(getattr(tool, "annotations", None), "read_only", None)
        flag = {True: "yes", False: "no", None: ""}[read_only]
        yield f"| `{name}` | {_cell(tool.spec.description)} | {_cell(arguments)} | {flag} |"
    yield ""
    yield (
        "They run through the `file` and `http` steps' executors: the same workspace "
        f"confinement, URL checks and output cap; `http_get` gives up after "
        f"{builtin.HTTP_GET_TIMEOUT_SECONDS:g} s."
    )
    yield ""


def _limit_section() -> Iterator[str]:
    output = Workflow.model_fields["output_limit_bytes"]
    rows = [
        ("steps in a workflow", f"{MAX_STEPS:,}"),
        ("step id", f"matches `{STEP_ID_PATTERN}` (`.` only in plan children's ids)"),
        ("workflow file", f"{load.MAX_DOCUMENT_BYTES:,} bytes, nested {load.MAX_DEPTH} deep"),
        ("an expression", f"{expr.MAX_LENGTH:,} characters, nested {expr.MAX_DEPTH} deep"),
        (
            "a step's stored output",
            f"`output_limit_bytes`, default {DEFAULT_OUTPUT_LIMIT_BYTES:,}"
            f" bytes ({_constraints(output)}); larger outputs are cut, with a marker saying so",
        ),
        ("problems listed by `validate`", f"the first {MAX_PROBLEMS_LISTED}, the rest counted"),
    ]
    yield "## Limits"
    yield ""
    yield "Each field's own limits are in its table above. Besides them:"
    yield ""
    yield "| what | limit |"
    yield "| --- | --- |"
    yield from (f"| {what} | {_cell(limit)} |" for what, limit in rows)
    yield ""


def _workspace() -> Iterator[str]:
    yield "## The workspace"
    yield ""
    yield (
        "Where a run's files, relative paths, python imports and the default store resolve: "
        f"see {_workspace_section()}."
    )
    yield ""


def _workspace_section() -> str:
    """A link to the README's section on the workspace (its first heading naming it)."""
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    for heading in re.findall(r"^#{2,4} (.+)$", text, flags=re.MULTILINE):
        if "workspace" in heading.lower():
            anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            return f"[{heading.strip()}](../README.md#{anchor}) in the README"
    return "[the README](../README.md)"


def main() -> None:
    """`python -m podium.reference`: print the page."""
    print(render(), end="")


__all__ = ["ReferenceError", "main", "render"]
