"""The Ray execution backend against a real local Ray (two CPUs, no dashboard, started once for
the module): outputs as in-process, reports and checkpoints crossing back, cancellation and
timeouts that stop the remote task, a killed worker handled like a dead engine, the sandbox on
the far side, and a cluster that is not there refused before anything is recorded."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from podium.core import events as ev
from podium.core.happenings import AttemptOutcome, Report
from podium.core.state import StepStatus
from podium.errors import SpecError, UsageError
from podium.runtime.engine import Engine
from podium.runtime.execution import AttemptRequest
from podium.runtime.ray import RayBackend
from podium.spec.model import PythonStep
from podium.steps import python as python_steps
from podium.store import open_store

ROOT = Path(__file__).resolve().parents[2]
CALL = "tests.runtime.ray_callables"


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the module; its workers import the tests' callables and Podium from
    this checkout (the raylet passes its environment on)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), before or ""])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as eng:
        yield eng


def py(step_id: str, fn: str, *needs: str, **fields: Any) -> dict[str, Any]:
    call = fn if ":" in fn else f"{CALL}:{fn}"
    return {"id": step_id, "kind": "python", "call": call, "needs": list(needs), **fields}


def wf(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "t", "steps": list(steps), **fields}


async def until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


def errors(state: Any) -> dict[str, str | None]:
    return {sid: s.error for sid, s in state.steps.items()}


async def test_python_shell_and_file_steps_give_the_outputs_they_give_locally(
    engine: Engine,
) -> None:
    steps = [
        py("a", "tests.runtime.callables:echo", args={"value": {"n": 2, "who": "ray"}}),
        {
            "id": "b",
            "kind": "shell",
            "run": ["printf", "%s", "${{ steps.a.output.who }}"],
            "needs": ["a"],
        },
        {
            "id": "w",
            "kind": "file",
            "op": "write",
            "path": "out.txt",
            "content": "x",
            "needs": ["b"],
        },
        {"id": "r", "kind": "file", "op": "read", "path": "out.txt", "needs": ["w"]},
        py("c", "tests.runtime.callables:echo", "b", args={"value": "${{ steps.b.output }}!"}),
    ]
    local = await engine.run(wf(*steps))
    remote = await engine.run(wf(*steps, execution="ray"))
    assert local.status == remote.status == "succeeded", errors(remote)
    assert {k: s.output for k, s in remote.steps.items()} == {
        k: s.output for k, s in local.steps.items()
    }
    assert remote.steps["c"].output == "ray!"
    assert all(s.spec.execution == "ray" for s in remote.steps.values())


async def test_a_step_on_ray_runs_in_another_process(engine: Engine) -> None:
    state = await engine.run(wf(py("here", "where"), py("there", "where", execution="ray")))
    assert state.status == "succeeded", errors(state)
    assert state.steps["here"].output["pid"] == os.getpid()
    assert state.steps["there"].output["pid"] != os.getpid()


async def test_reports_checkpoints_and_live_text_cross_back(engine: Engine) -> None:
    run_id = await engine.submit(wf(py("c", "checkpointed", execution="ray")))
    deltas = asyncio.create_task(_collect(engine.deltas(run_id)))
    state = await engine.wait(run_id)
    assert state.status == "succeeded", errors(state)
    events = [s.event for s in await engine.store.read(run_id)]
    progress = [e.message for e in events if isinstance(e, ev.StepProgress)]
    assert progress == ["committed first", "then reported"]
    assert "".join(text for _, text in await deltas) == "half way "


async def _collect(stream: AsyncIterator[tuple[str, str]]) -> list[tuple[str, str]]:
    return [item async for item in stream]


async def test_cancelling_the_run_stops_the_ray_task_before_it_returns(
    engine: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    step = py("s", "sleeper", args={"seconds": 60, "marker": str(marker)}, execution="ray")
    run_id = await engine.submit(wf(step))
    await until(lambda: marker.exists())
    await engine.cancel(run_id)
    state = await engine.wait(run_id)
    assert state.status == "cancelled"
    assert marker.read_text() == "cancelled"  # the attempt had stopped before the step ended


async def test_a_timeout_stops_the_step_on_ray(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    args = {"seconds": 60, "marker": str(marker)}
    state = await engine.run(wf(py("s", "sleeper", args=args, timeout=1, execution="ray")))
    step = state.steps["s"]
    assert (step.status, step.error_type, step.error) == (
        StepStatus.FAILED,
        "timeout",
        "timed out after 1s",
    )
    assert marker.read_text() == "cancelled"


async def test_a_step_that_will_not_stop_has_its_worker_killed(tmp_path: Path) -> None:
    ledger = tmp_path / "pid"
    backend = RayBackend(cancel_grace_seconds=0.5)  # every step on Ray, killed 0.5 s after a cancel
    db = tmp_path / "podium.db"
    async with await Engine.open(db, workspace=tmp_path, backend=backend) as eng:
        run_id = await eng.submit(wf(py("s", "stubborn", args={"path": str(ledger)})))
        await until(lambda: ledger.exists() and ledger.read_text() != "")
        await eng.cancel(run_id)
        state = await eng.wait(run_id)
    assert state.status == "cancelled"
    assert not _alive(int(ledger.read_text()))  # its worker was killed before the step ended


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _kill_first_attempt(ledger: Path) -> int:
    pid = int(ledger.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_a_killed_worker_reruns_an_idempotent_step_with_the_same_key(
    engine: Engine, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    args = {"path": str(ledger), "seconds": 60}
    run_id = await engine.submit(
        wf(py("p", "pid_then_sleep", args=args, idempotent=True, execution="ray"))
    )
    await until(ledger.exists)
    killed = _kill_first_attempt(ledger)
    state = await engine.wait(run_id)
    assert state.status == "succeeded", errors(state)
    (first, second) = [line.split() for line in ledger.read_text().splitlines()]
    assert first[0] == str(killed)
    assert second[0] != str(killed)
    assert first[1] == second[1] == state.steps["p"].output  # the same idempotency key
    lost = [s.event for s in await engine.store.read(run_id) if s.event.kind == "step.lost"]
    assert len(lost) == 1
    assert isinstance(lost[0], ev.StepLost)
    assert lost[0].requeued
    assert "WorkerCrashedError" in lost[0].error


async def test_a_killed_worker_interrupts_a_side_effecting_step_until_a_retry(
    engine: Engine, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    args = {"path": str(ledger), "seconds": 60}
    run_id = await engine.submit(wf(py("p", "pid_then_sleep", args=args, execution="ray")))
    await until(ledger.exists)
    _kill_first_attempt(ledger)
    state = await engine.wait(run_id)
    step = state.steps["p"]
    assert step.status is StepStatus.INTERRUPTED
    assert step.error is not None
    assert "Ray worker" in step.error
    assert len(ledger.read_text().splitlines()) == 1  # not run a second time on its own
    await engine.retry(run_id, "p")
    state = await engine.wait(run_id)
    assert state.status == "succeeded", errors(state)
    assert len(ledger.read_text().splitlines()) == 2


def _probe(port: int, targets: list[Path]) -> str:
    """Writes each target (outside the workspace: counted from outside), one file inside, and
    prints whether a TCP connection to the host's listener got through."""
    return f"""
import socket
from pathlib import Path
for target in {[str(t) for t in targets]!r}:
    try:
        Path(target).write_text("pwned")
    except OSError:
        pass
Path("inside.txt").write_text("ok")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("connected")
except OSError:
    print("no network")
"""


@pytest.mark.parametrize("sandboxed", [True, False])
async def test_a_shell_step_on_ray_keeps_its_sandbox(
    engine: Engine, tmp_path: Path, sandboxed: bool
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    targets = [tmp_path / f"beside-{sandboxed}", Path("/var/tmp") / f"{tmp_path.name}-{sandboxed}"]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    run = [sys.executable, "-c", _probe(port, targets)]
    step = {"id": "s", "kind": "shell", "run": run, "sandbox": sandboxed}
    try:
        state = await engine.run(wf(step, execution="ray"), workspace=workspace)
        written = [t for t in targets if t.exists()]
    finally:
        server.close()
        targets[1].unlink(missing_ok=True)
    assert state.status == "succeeded", errors(state)
    assert (workspace / "inside.txt").read_text() == "ok"
    if sandboxed:
        assert (written, state.steps["s"].output) == ([], "no network")
    else:  # the same probe gets out without the sandbox
        assert (written, state.steps["s"].output) == (targets, "connected")


async def test_a_workspace_missing_on_the_node_is_a_clear_step_error(
    engine: Engine, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    steps = [py("gone", "remove_workspace"), py("s", "where", "gone", execution="ray")]
    state = await engine.run(wf(*steps), workspace=workspace)
    step = state.steps["s"]
    assert step.status is StepStatus.FAILED
    assert f"the run's workspace {workspace} does not exist on Ray node" in (step.error or "")


async def test_an_agent_step_on_ray_is_refused_before_anything_is_recorded(
    engine: Engine,
) -> None:
    doc = wf({"id": "a", "kind": "agent", "agent": "x", "prompt": "p", "execution": "ray"})
    with pytest.raises(SpecError, match=r"steps\[0\]: execution: ray does not apply to agent"):
        await engine.submit(doc)
    assert await engine.list_runs() == []


async def test_a_callable_registered_by_name_travels_with_the_attempt(engine: Engine) -> None:
    offset = 40

    def add_offset(n: int) -> int:  # defined here: it can only reach the worker by value
        return n + offset

    python_steps.register("ray-test-add-offset")(add_offset)
    step = {"id": "s", "kind": "python", "call": "ray-test-add-offset", "args": {"n": 2}}
    state = await engine.run(wf({**step, "execution": "ray"}))
    assert state.status == "succeeded", errors(state)
    assert state.steps["s"].output == 42


class _Sink:
    def report(self, report: Report) -> None:
        raise AssertionError(f"unexpected report {report}")

    async def checkpoint(self, report: Report) -> None:
        raise AssertionError(f"unexpected checkpoint {report}")

    def delta(self, text: str) -> None:
        raise AssertionError(f"unexpected delta {text!r}")


async def test_a_cluster_gone_after_a_run_was_claimed_fails_the_step_as_a_value(
    tmp_path: Path, closed_port: int
) -> None:
    backend = RayBackend(f"127.0.0.1:{closed_port}")
    request = AttemptRequest(
        run_id="r",
        step_id="s",
        attempt=1,
        generation=0,
        idempotency_key="k",
        lease_epoch=1,
        workspace=tmp_path,
        output_limit_bytes=1024,
        step=PythonStep(id="s", call=f"{CALL}:where", execution="ray"),
    )
    outcome = await backend.execute(request, _Sink())
    assert isinstance(outcome, AttemptOutcome)
    assert (outcome.error_type, outcome.retryable, outcome.lost) == ("unavailable", True, False)
    assert "cannot reach the Ray cluster" in (outcome.error or "")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening, held for the test: a connection to it is refused, and no
    other process (a Ray worker among them) can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


async def test_an_unreachable_cluster_fails_when_the_engine_opens(
    tmp_path: Path, closed_port: int
) -> None:
    address = f"ray://127.0.0.1:{closed_port}"
    with pytest.raises(UsageError, match=f"cannot reach the Ray cluster at {address}"):
        await Engine.open(tmp_path / "podium.db", ray_address=address)


async def test_an_unreachable_cluster_fails_a_submission_before_it_is_recorded(
    tmp_path: Path, closed_port: int
) -> None:
    address = f"127.0.0.1:{closed_port}"
    store = await open_store(tmp_path / "podium.db")
    async with Engine(store, workspace=tmp_path, ray_address=address) as engine:
        with pytest.raises(UsageError, match="PODIUM_RAY_ADDRESS"):
            await engine.submit(wf(py("s", "where", execution="ray")))
        assert await engine.list_runs() == []
        state = await engine.run(wf(py("s", "where")))  # local steps need no cluster
        assert state.status == "succeeded"


async def test_the_dispatch_benchmark_times_both_ways() -> None:
    from benchmarks import ray as bench

    figures = await bench.measure(steps=3, repeat=1)
    assert figures["ray_start_s"] == 0.0  # it used the Ray this process joined
    assert figures["local_ms_per_step"] > 0
    assert figures["ray_ms_per_step"] > 0
    overhead = figures["ray_ms_per_step"] - figures["local_ms_per_step"]
    assert figures["ray_overhead_ms_per_step"] == pytest.approx(overhead, abs=0.02)
