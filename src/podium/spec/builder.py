"""Building workflows in Python; `build()` validates like a file does, so both give equal models."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from podium.errors import UsageError
from podium.spec.model import InputType, OnFailure, Workflow
from podium.spec.validate import validate_workflow


@dataclass(frozen=True, slots=True)
class StepRef:
    """A step added to a builder; pass it in `needs=` of later steps."""

    id: str

    def __str__(self) -> str:
        return self.id


Need = StepRef | str
Needs = Need | Iterable[Need]


class WorkflowBuilder:
    """Collects a workflow as a plain document; unset fields keep the model's defaults."""

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        description: str | None = None,
        max_concurrency: int | None = None,
        on_failure: OnFailure | None = None,
        output_limit_bytes: int | None = None,
        policy: BaseModel | dict[str, Any] | None = None,
    ) -> None:
        top = {
            "version": version,
            "description": description,
            "max_concurrency": max_concurrency,
            "on_failure": on_failure,
            "output_limit_bytes": output_limit_bytes,
            "policy": None if policy is None else _plain(policy),
        }
        self.name = name
        self._top = {key: value for key, value in top.items() if value is not None}
        self._inputs: dict[str, dict[str, Any]] = {}
        self._steps: list[dict[str, Any]] = []

    def input(
        self,
        name: str,
        type: InputType = "string",
        *,
        default: Any = None,
        required: bool | None = None,
        description: str | None = None,
    ) -> WorkflowBuilder:
        """Declare an input; returns the builder so declarations can be chained."""
        given = {"default": default, "required": required, "description": description}
        self._inputs[name] = {"type": type, **{k: v for k, v in given.items() if v is not None}}
        return self

    def step(self, kind: str, id: str, **fields: Any) -> StepRef:
        """Add a step of any kind; `needs=` takes StepRefs, ids or a list of them."""
        document = {"id": id, "kind": kind, **{key: _plain(value) for key, value in fields.items()}}
        if "needs" in fields:
            document["needs"] = _needs(fields["needs"])
        self._steps.append(document)
        return StepRef(id)

    def shell(self, id: str, run: str | list[str], **fields: Any) -> StepRef:
        return self.step("shell", id, run=run, **fields)

    def python(
        self,
        id: str,
        call: str | Callable[..., Any],
        args: dict[str, Any] | None = None,
        **fields: Any,
    ) -> StepRef:
        """`call` is a registered name, `package.module:function`, or a module-level function."""
        if args is not None:
            fields["args"] = args
        return self.step("python", id, call=_call_name(call), **fields)

    def file(self, id: str, op: str, path: str, content: Any = None, **fields: Any) -> StepRef:
        if content is not None:
            fields["content"] = content
        return self.step("file", id, op=op, path=path, **fields)

    def http(self, id: str, url: str, method: str = "GET", **fields: Any) -> StepRef:
        return self.step("http", id, url=url, method=method, **fields)

    def loop(
        self,
        id: str,
        body: WorkflowBuilder,
        max_iterations: int,
        until: str | None = None,
        **fields: Any,
    ) -> StepRef:
        """A loop step whose body is `body`'s steps (built on a builder of its own, whose name
        and inputs are not used): repeated until `until` holds or `max_iterations` ran."""
        if until is not None:
            fields["until"] = until
        steps = copy.deepcopy(body._steps)
        return self.step("loop", id, max_iterations=max_iterations, steps=steps, **fields)

    def workflow(
        self, id: str, workflow: str, inputs: dict[str, Any] | None = None, **fields: Any
    ) -> StepRef:
        """A `workflow` step: `workflow` (a file relative to the run's workspace, or a name
        registered with `Engine(workflows=…)`) runs as a child run with `inputs`."""
        if inputs is not None:
            fields["inputs"] = inputs
        return self.step("workflow", id, workflow=workflow, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The workflow as the document a YAML or JSON file would hold."""
        document: dict[str, Any] = {"name": self.name, **self._top}
        if self._inputs:
            document["inputs"] = self._inputs
        document["steps"] = self._steps
        return copy.deepcopy(document)

    def build(self) -> Workflow:
        """Validate and return the workflow; problems raise SpecError as for a file."""
        return validate_workflow(self.to_dict(), source=f"WorkflowBuilder({self.name!r})")


def _needs(needs: Needs) -> list[str]:
    if isinstance(needs, StepRef | str):
        return [str(needs)]
    return [str(need) for need in needs]


def _plain(value: Any) -> Any:
    """Models (a RetryPolicy, a Quorum) and StepRefs become the plain values a document holds."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, StepRef):
        return value.id
    return value


def _call_name(call: str | Callable[..., Any]) -> str:
    if isinstance(call, str):
        return call
    module = getattr(call, "__module__", None)
    qualname = getattr(call, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise UsageError(
            f"{call!r} cannot be imported by name; define it at module level, or register it "
            "with @podium.steps.python.register and pass its registered name"
        )
    return f"{module}:{qualname}"
