"""Where attempts run. `placed` settles each step's `execution` when a run is submitted (the
step's, else its workflow's, else the project's: spec/execution.py), and `PlacedBackend`, the
engine's default backend, sends each attempt there: to the in-process backend, or to a Ray backend
started on first need (runtime/ray.py, imported only then: Ray is the `[ray]` extra)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podium.core.happenings import AttemptOutcome
from podium.errors import UsageError
from podium.runtime.execution import AttemptRequest, AttemptSink, ExecutionBackend
from podium.spec.execution import RAY_ADDRESS_ENV, RAY_KINDS, Execution, address_problem
from podium.spec.loop import walk
from podium.spec.model import LoopStep, StepBase, Workflow

if TYPE_CHECKING:
    from podium.runtime.ray import RayBackend


def ray_address(given: str | None = None, configured: str | None = None) -> str | None:
    """The Ray cluster to use: `given` (`Engine(ray_address=…)`, `podium worker --ray`), else
    `PODIUM_RAY_ADDRESS`, else the project's `ray_address`; None: start a local Ray in this
    process when a step needs it. UsageError for an address Ray cannot mean."""
    address = given or os.environ.get(RAY_ADDRESS_ENV) or configured
    if address and (problem := address_problem(address)) is not None:
        raise UsageError(problem)
    return address or None


class PlacedBackend:
    """Routes each attempt to `local` or to Ray at `ray_address` (None: a local Ray). With an
    address, `prepare()` joins the cluster at once, so a wrong one fails when the engine opens."""

    def __init__(self, local: ExecutionBackend, *, ray_address: str | None = None) -> None:
        self.local = local
        self.ray_address = ray_address
        self._ray: RayBackend | None = None
        self._starting = asyncio.Lock()

    async def prepare(self, workflow: Workflow | None = None) -> None:
        """Make sure what `workflow` needs is there (None: what this engine was configured
        with): UsageError if its Ray cluster cannot be joined, before anything is recorded."""
        await self.local.prepare(workflow)
        wants_ray = self.ray_address is not None if workflow is None else _needs_ray(workflow)
        if wants_ray:
            await (await self.ray()).start()

    async def ray(self) -> RayBackend:
        if self._ray is None:
            async with self._starting:
                if self._ray is None:
                    self._ray = _ray_backend(self.ray_address)
        return self._ray

    async def execute(self, request: AttemptRequest, sink: AttemptSink) -> AttemptOutcome:
        if not on_ray(request.step):
            return await self.local.execute(request, sink)
        try:
            ray = await self.ray()
        except UsageError as exc:  # Ray is not installed where the run was claimed
            step, attempt = request.step_id, request.attempt
            return AttemptOutcome(step, attempt, error=str(exc), error_type="unavailable")
        return await ray.execute(request, sink)

    async def aclose(self) -> None:
        if self._ray is not None:
            await self._ray.aclose()
        await self.local.aclose()


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
        if isinstance(step, LoopStep):
            step = step.model_copy(update={"steps": _place(step.steps, chosen)})
        elif step.execution is None and getattr(step, "kind", "") in RAY_KINDS:
            step = step.model_copy(update={"execution": chosen})
        out.append(step)
    return out


def on_ray(step: StepBase) -> bool:
    return step.execution == "ray"


def _needs_ray(workflow: Workflow) -> bool:
    return any(on_ray(step) for _, step in walk(workflow.steps))


def _ray_backend(address: str | None) -> RayBackend:
    try:
        from podium.runtime.ray import RayBackend
    except ImportError as exc:
        raise UsageError(
            f"a step has `execution: ray` but Ray is not installed ({exc}); install it with "
            "`pip install 'podium[ray]'`, or run the step locally"
        ) from None
    return RayBackend(address)


__all__ = ["PlacedBackend", "on_ray", "placed", "ray_address"]
