"""Where a step's attempts run: `local` (in the process that drives the run, the default) or `ray`
(a Ray task on a cluster: runtime/ray.py). A step says so with `execution:`, a workflow gives a
default to its steps, the project configuration (`execution = "ray"`) one to every run's steps;
`placed` settles each step's at submission, so the run records where its steps run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from podium.spec.model import StepBase, Workflow

Execution = Literal["local", "ray"]
EXECUTIONS: tuple[str, ...] = get_args(Execution)
# what runs anywhere: the executor needs nothing of the driver's process but the attempt itself
RAY_KINDS: tuple[str, ...] = ("shell", "python", "http", "file")
_AGENT_SERVICES = "it needs the driver's models, tools and breakers"
_WHY_NOT: dict[str, str] = {
    "agent": _AGENT_SERVICES,
    "plan": _AGENT_SERVICES,
    "human": "it waits for a person and runs nothing",
    "workflow": "its attempt is a child run: mark that workflow's steps instead",
    "loop": "it runs no attempt: mark its body's steps instead",
}


def ray_problem(kind: str) -> str | None:
    """Why a step of `kind` cannot run on Ray (None: it can)."""
    if kind in RAY_KINDS:
        return None
    why = _WHY_NOT.get(kind, "its executor needs the driver's process")
    return (
        f"execution: ray does not apply to {kind} steps ({why}); remove it here. Only "
        f"{', '.join(RAY_KINDS)} steps run on Ray"
    )


def address_problem(address: str) -> str | None:
    """What is wrong with a Ray cluster address (None: nothing)."""
    if re.fullmatch(r"auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+", address):
        return None
    return (
        f"Ray address {address!r} is not one Ray connects to: write auto (the cluster this "
        "machine joined), ray://HOST:PORT (Ray Client, port 10001) or HOST:PORT (the head's GCS, "
        "port 6379)"
    )


def placed(workflow: Workflow, default: Execution | None = None) -> Workflow:
    """The workflow with its default (else `default`, the project's) written onto every step that
    can run on Ray and says nothing itself, loop bodies included. Unchanged when it is local."""
    chosen = workflow.execution or default
    if chosen != "ray":
        return workflow
    return workflow.model_copy(update={"steps": _place(workflow.steps, chosen)})


def _place(steps: Sequence[StepBase], chosen: Execution) -> list[Any]:
    out: list[Any] = []
    for step in steps:
        kind = getattr(step, "kind", "")
        if kind == "loop":
            step = step.model_copy(update={"steps": _place(step.steps, chosen)})  # type: ignore[attr-defined]
        elif step.execution is None and kind in RAY_KINDS:
            step = step.model_copy(update={"execution": chosen})
        out.append(step)
    return out


def on_ray(step: StepBase) -> bool:
    return step.execution == "ray"


__all__ = [
    "EXECUTIONS",
    "RAY_KINDS",
    "Execution",
    "address_problem",
    "on_ray",
    "placed",
    "ray_problem",
]
