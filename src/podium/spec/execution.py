"""Where a step's attempts run: `local` (in the process that drives the run, the default) or `ray`
(a Ray task on a cluster: runtime/ray.py). A step says so with `execution:`, a workflow gives a
default to its steps, the project configuration (`execution = "ray"`) one to every run's steps;
`runtime.placement.placed` settles each step's at submission, so the run records it."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator

Execution = Literal["local", "ray"]
EXECUTIONS: tuple[str, ...] = get_args(Execution)
RAY_ADDRESS_ENV = "PODIUM_RAY_ADDRESS"
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


def _checked_address(address: str) -> str:
    if (problem := address_problem(address)) is not None:
        raise ValueError(problem)
    return address


RayAddress = Annotated[str, AfterValidator(_checked_address)]


__all__ = [
    "EXECUTIONS",
    "RAY_ADDRESS_ENV",
    "RAY_KINDS",
    "Execution",
    "RayAddress",
    "address_problem",
    "ray_problem",
]
