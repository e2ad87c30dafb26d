"""The Ray execution backend: each attempt of a step marked `execution: ray` runs as a Ray task on
a Ray cluster, with the same executors and sandbox as in the driver's process, while the driver
keeps the run's lease and commits the outcome with the same fencing as any other.

The request goes out as plain data; the attempt's reports, live text and checkpoints come back in
order as the items of a streaming Ray generator (runtime/_ray_worker.py), its outcome last; a
checkpoint's sender waits at the relay actor until the driver says the run committed it. Cancel
the attempt and the Ray task is cancelled, and `execute` returns only once it stopped (forced
after a grace time). A worker or node that dies mid-attempt makes the outcome `lost`: the core
requeues or interrupts the step as a take-over would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import ray
import ray.exceptions as rex

from podium.core.happenings import AttemptOutcome
from podium.errors import UsageError
from podium.runtime.execution import AttemptRequest, AttemptSink
from podium.spec.execution import RAY_ADDRESS_ENV
from podium.spec.model import PythonStep, StepBase, Workflow
from podium.steps import procs
from podium.steps import python as python_steps

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 5.0
RELAY_NAME = "podium-relay"
_LOST = (
    rex.WorkerCrashedError,
    rex.NodeDiedError,
    rex.LocalRayletDiedError,
    rex.ObjectLostError,
    rex.OutOfMemoryError,
    rex.RaySystemError,
    rex.TaskCancelledError,  # cancelled by someone else (`ray cancel`): nobody heard its end
)
_log = logging.getLogger("podium.ray")


class RayBackend:
    """Runs attempts as Ray tasks. `address` is a cluster (`auto`, `ray://host:port`,
    `host:port`); None starts a local Ray with `num_cpus` CPUs (default: this machine's), a
    fixed object store and no dashboard. A Ray this process already joined is used as it is.
    `cancel_grace_seconds` is how long a cancelled attempt may take to stop before its worker
    is killed."""

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cancel_grace_seconds: float = 5.0,
    ) -> None:
        self.address = address
        self._num_cpus = num_cpus
        self._grace = cancel_grace_seconds
        self._lock = asyncio.Lock()
        self._relay: Any = None
        self._owns_ray = False

    async def start(self) -> None:
        """Join (or start) Ray once; UsageError, saying what to do, if the cluster is not there."""
        if self._relay is not None:
            return
        async with self._lock:
            if self._relay is None:
                await asyncio.to_thread(self._connect)

    async def prepare(self, workflow: Workflow | None = None) -> None:
        await self.start()

    def _connect(self) -> None:
        from podium.runtime._ray_worker import Relay  # defines the Ray remote functions

        address = self.address
        if address is not None and address != "auto":
            _reachable(address)  # a clear error now, not Ray's retries for a minute
        if not ray.is_initialized():  # else use the Ray this process joined
            self._init()
            self._owns_ray = True
        self._relay = _relay(Relay)

    def _init(self) -> None:
        address = self.address
        options: dict[str, Any] = {}
        if address is None:
            cpus = self._num_cpus or os.cpu_count() or 1
            options = {"num_cpus": cpus, "object_store_memory": LOCAL_OBJECT_STORE_BYTES}
        try:
            ray.init(
                address=address,
                include_dashboard=False if address is None else None,
                logging_level=logging.ERROR,
                log_to_driver=False,
                **options,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"cannot join the Ray cluster at {address}: {exc}; start it (`ray start --head`) "
                f"or fix the address ({RAY_ADDRESS_ENV}, `ray_address` in the project "
                "configuration, or `podium worker --ray`)"
            ) from None

    async def execute(self, request: AttemptRequest, sink: AttemptSink) -> AttemptOutcome:
        try:
            await self.start()  # a worker that claimed a run starts its Ray here, on first need
        except UsageError as exc:
            return _failed(request, str(exc), error_type="unavailable", retryable=True)
        from podium.runtime._ray_worker import run_attempt

        key = uuid.uuid4().hex
        try:
            stream = run_attempt.remote(request, self._relay, key, _callables(request.step))
        except Exception as exc:  # the request or a callable would not serialize
            return _failed(request, f"cannot send the attempt to Ray: {type(exc).__name__}: {exc}")
        try:
            return await self._follow(stream, key, request, sink)
        except asyncio.CancelledError:
            await self._stop(stream, key, request)
            raise

    async def _follow(
        self, stream: Any, key: str, request: AttemptRequest, sink: AttemptSink
    ) -> AttemptOutcome:
        try:
            async for ref in stream:
                item = await ref
                if item[0] == "outcome":
                    outcome: AttemptOutcome = item[1]
                    return outcome
                if item[0] == "report":
                    sink.report(item[1])
                elif item[0] == "delta":
                    sink.delta(item[1])
                else:  # a checkpoint: its sender goes on once the run has committed it
                    await sink.checkpoint(item[2])
                    self._relay.ack.remote(key, item[1])
        except rex.RayTaskError as exc:  # the task itself broke: not the attempt's doing
            return _failed(request, f"the Ray task failed: {exc.cause!r}")
        except _LOST as exc:
            return _lost(request, exc)
        return _lost(request, "the Ray task ended without an outcome")

    async def _stop(self, stream: Any, key: str, request: AttemptRequest) -> None:
        """Cancel the task and wait until the attempt stopped; kill its worker if it does not
        stop within the grace time (then also the process groups it left on this machine)."""
        step, grace = request.step_id, self._grace
        try:
            ray.cancel(stream)
            settled = await self._relay.settle.remote(key, grace)
            if settled != "running":
                return
            _log.warning("step %s did not stop in %gs on Ray: killing its worker", step, grace)
            ray.cancel(stream, force=True)
            await _ended(stream)
        except rex.RayError as exc:  # the cluster or the relay went away: nothing is left to stop
            _log.warning("cancelling step %s on Ray: %s", step, exc)
        await asyncio.to_thread(
            procs.stop_leftovers, request.workspace, request.run_id, [request.step_id]
        )

    async def aclose(self) -> None:
        if self._owns_ray:
            await asyncio.to_thread(ray.shutdown)
        self._relay = None


_relays: dict[str, Any] = {}  # Ray job -> its relay, held here: an actor dies with its handles


def _relay(relay_class: Any) -> Any:
    """This process's relay actor in the Ray it joined, started on first need."""
    job = ray.get_runtime_context().get_job_id()
    relay = _relays.get(job)
    if relay is None:
        name = f"{RELAY_NAME}-{socket.gethostname()}-{os.getpid()}-{job}"
        relay = relay_class.options(name=name, get_if_exists=True).remote()
        ray.get(relay.settle.remote("", 0.0))  # it is up: the first attempt does not wait for it
        _relays.clear()  # a relay of an earlier Ray session is gone with it
        _relays[job] = relay
    return relay


async def _ended(stream: Any, seconds: float = 10.0) -> None:
    """Until Ray reports the end of the task (its worker killed), for at most `seconds`."""
    with contextlib.suppress(TimeoutError, rex.RayError):
        async with asyncio.timeout(seconds):
            async for _ in stream:
                pass


def _callables(step: StepBase) -> dict[str, Callable[..., Any]]:
    """A python step's callable registered by name here: sent along (an importable function by
    reference, one defined in a script by value), so the name means the same on the worker."""
    if not isinstance(step, PythonStep):
        return {}
    found = python_steps.registered().get(step.call)
    return {step.call: found} if found is not None else {}


def _reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as exc:
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it "
            f"(`ray start --head`) or fix the address ({RAY_ADDRESS_ENV}, `ray_address` in the "
            "project configuration, or `podium worker --ray`)"
        ) from None


def _failed(
    request: AttemptRequest, error: str, *, error_type: str = "internal", retryable: bool = False
) -> AttemptOutcome:
    return AttemptOutcome(
        request.step_id, request.attempt, error=error, retryable=retryable, error_type=error_type
    )


def _lost(request: AttemptRequest, cause: BaseException | str) -> AttemptOutcome:
    what = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
    error = f"the Ray worker running the attempt was lost ({what})"
    return AttemptOutcome(request.step_id, request.attempt, error=error[:500], lost=True)


__all__ = ["RayBackend"]
