"""The shell sandbox against real bubblewrap, probed as an attacker would: environment, network,
writes outside the workspace, descendants after timeout and cancel. Each probe counts what got
through and asserts 0; the same probes with `sandbox: false` get through (so they can fail)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.processes import survivors

from podium.config import load_config
from podium.errors import StepExecutionError
from podium.spec.model import PlanStep, ShellStep
from podium.spec.plan import check_plan
from podium.spec.policy import Policy, effective
from podium.spec.sandbox import SandboxPolicy
from podium.steps import sandbox
from podium.steps.base import StepContext, StepResult
from podium.steps.shell import ShellExecutor

from .conftest import ContextFactory

SECRET = "sk-sandbox-probe-0123456789abcdef"


async def run(ctx: StepContext, run: str | list[str], **fields: Any) -> StepResult:
    fields.setdefault("sandbox", True)
    return await ShellExecutor().execute(ShellStep(id="s", run=run, **fields), ctx)


async def sh(ctx: StepContext, script: str, **fields: Any) -> str:
    output = (await run(ctx, script, shell="sh", **fields)).output
    assert isinstance(output, str)
    return output


# --- environment -------------------------------------------------------------------------


async def test_the_engines_secrets_are_not_visible(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"]
    for name in names:
        monkeypatch.setenv(name, SECRET)
    output = await sh(ctx, "env")
    leaked = [name for name in names if name in output] + ([SECRET] if SECRET in output else [])
    assert leaked == []
    seen = dict(line.split("=", 1) for line in output.splitlines())
    assert seen["HOME"] == "/tmp"
    assert seen["PODIUM_RUN_ID"] == "run-1"


async def test_a_named_secret_is_passed_and_only_it(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    monkeypatch.setenv("OTHER_TOKEN", SECRET + "-other")
    output = await sh(
        ctx, "echo $DEPLOY_TOKEN; echo ${OTHER_TOKEN:-unset}", secrets=["DEPLOY_TOKEN"]
    )
    assert output.splitlines() == [SECRET, "unset"]


async def test_a_named_secret_that_is_not_set_is_a_clear_error(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    with pytest.raises(StepExecutionError, match="secret NOT_SET_TOKEN is not set") as info:
        await sh(ctx, "true", secrets=["NOT_SET_TOKEN"])
    assert not info.value.retryable


def test_a_secret_must_be_a_variable_name() -> None:
    with pytest.raises(ValueError, match="not an environment variable name"):
        ShellStep(id="s", run="true", secrets=["A=B"])


# --- network -----------------------------------------------------------------------------


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP listener on 127.0.0.1 of the test process, and the connections it accepted."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


def _network_probe(port: int) -> list[str]:
    host_ip = _host_address()
    code = f"""
import socket
reached = 0
for host in ["127.0.0.1", "localhost", {host_ip!r}]:
    try:
        socket.create_connection((host, {port}), timeout=2).close()
        reached += 1
    except OSError:
        pass
try:
    socket.getaddrinfo("example.com", 80)
    reached += 1
except OSError:
    pass
print(reached)
"""
    return [sys.executable, "-c", code]


def _host_address() -> str:
    """An address of this host that is not loopback (where there is one), else loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def test_no_network(ctx: StepContext, listener: tuple[int, list[int]]) -> None:
    port, accepted = listener
    result = await run(ctx, _network_probe(port))
    assert result.output == "0"
    assert accepted == []


async def test_without_the_sandbox_the_listener_is_reached(
    ctx: StepContext, listener: tuple[int, list[int]]
) -> None:
    port, accepted = listener
    result = await run(ctx, _network_probe(port), sandbox=False)
    assert int(result.output) >= 2
    assert len(accepted) >= 2
    assert result.meta is not None
    assert result.meta["sandbox"] is False


# --- writes outside the workspace --------------------------------------------------------


def _targets(workspace: Path) -> list[Path]:
    """Files a step must not change: a HOME-like dotfile, /etc, the host's /tmp and /var/tmp,
    the workspace's .podium/ and a protected file inside the workspace."""
    tag = uuid.uuid4().hex
    home = Path("/var/tmp") / f"podium-home-{tag}"
    home.mkdir()
    (workspace / ".podium").mkdir()
    targets = [
        home / ".bashrc",
        Path("/etc") / f"podium-probe-{tag}",
        Path("/tmp") / f"podium-probe-{tag}",
        Path("/var/tmp") / f"podium-probe-{tag}",
        workspace / ".podium" / "podium.db",
        workspace / "podium.toml",
    ]
    for target in targets:
        target.write_text("original\n")
    return targets


def _write_probe(targets: list[Path]) -> str:
    """Append to each target, then try to delete it (the changes are counted from outside)."""
    lines = [f"echo pwned >> {t}; mv {t} {t}.moved; rm -f {t}.moved" for t in targets]
    return "\n".join([*lines, "echo ok > inside.txt"])


def _changed(targets: list[Path]) -> list[Path]:
    return [t for t in targets if not t.exists() or t.read_text() != "original\n"]


def _clean(targets: list[Path]) -> None:
    for target in targets[:4]:
        target.unlink(missing_ok=True)
        Path(f"{target}.moved").unlink(missing_ok=True)
    targets[0].parent.rmdir()


async def test_writes_outside_the_workspace_fail(
    make_ctx: ContextFactory, tmp_path: Path, workspace: Path
) -> None:
    targets = _targets(workspace)
    ctx = make_ctx(protected=(workspace / "podium.toml", tmp_path / "store.db"))
    try:
        await run(ctx, _write_probe(targets), shell="sh")
        changed = _changed(targets)
    finally:
        _clean(targets)
    assert changed == []
    assert (workspace / "inside.txt").read_text() == "ok\n"  # the workspace stays writable


async def test_without_the_sandbox_the_writes_get_through(
    make_ctx: ContextFactory, workspace: Path
) -> None:
    targets = _targets(workspace)
    try:
        await run(make_ctx(), _write_probe(targets), shell="sh", sandbox=False)
        changed = _changed(targets)
    finally:
        _clean(targets)
    assert changed == targets


async def test_podiums_absent_configuration_cannot_be_created(
    make_ctx: ContextFactory, workspace: Path
) -> None:
    """bwrap cannot mount a file that is not there, so an absent podium.toml or .mcp.json (which
    would loosen every later run's policy) is looked for after the step: a file the step made
    is removed and the step fails; a folder (the agents catalog) is left for a person."""
    absent = [workspace / "podium.toml", workspace / ".mcp.json", workspace / "agents"]
    ctx = make_ctx(protected=tuple(absent))
    script = (
        "printf '[policy.sandbox]\\nenabled = false\\n' > podium.toml; "
        "ln -s /etc/passwd .mcp.json; mkdir agents; echo ok > inside.txt"
    )
    with pytest.raises(StepExecutionError) as caught:
        await run(ctx, script, shell="sh")
    assert caught.value.error_type == "sandbox"
    assert not caught.value.retryable
    assert "podium.toml" in str(caught.value)
    assert ".mcp.json" in str(caught.value)
    for gone in (workspace / "podium.toml", workspace / ".mcp.json"):
        assert not gone.exists()
        assert not gone.is_symlink()
    assert (workspace / "agents").is_dir()  # left, and named in the error
    assert "agents" in str(caught.value)
    assert (workspace / "inside.txt").read_text() == "ok\n"
    # a step that leaves them alone is not held to it; with the sandbox off nothing is looked at
    assert await sh(make_ctx(protected=(workspace / "podium.toml",)), "echo fine") == "fine"
    await run(ctx, "touch podium.toml", shell="sh", sandbox=False)
    assert (workspace / "podium.toml").exists()


async def test_extra_read_paths_come_from_the_policy(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    shared = Path("/var/tmp") / f"podium-read-{uuid.uuid4().hex}"
    shared.mkdir()
    try:
        (shared / "data.txt").write_text("shared\n")
        script = f"cat {shared}/data.txt; echo x >> {shared}/data.txt || echo refused"
        without = await sh(make_ctx(), f"cat {shared}/data.txt 2>/dev/null || echo hidden")
        policy = Policy(sandbox=SandboxPolicy(read=[str(shared)]))
        with_read = await sh(make_ctx(policy=policy), script + " 2>/dev/null")
        assert (shared / "data.txt").read_text() == "shared\n"
    finally:
        for child in shared.iterdir():
            child.unlink()
        shared.rmdir()
    assert without == "hidden"
    assert with_read.splitlines() == ["shared", "refused"]


async def test_the_engines_python_runs_inside(ctx: StepContext) -> None:
    assert (await run(ctx, [sys.executable, "-c", "print(6 * 7)"])).output == "42"
    assert (await run(ctx, ["python3", "-c", "print('py')"])).output == "py"


async def test_a_read_path_or_an_engine_under_tmp_is_not_hidden_by_the_private_tmp(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    """The sandbox's /tmp is its own; what is mounted from the host's /tmp (a clean clone's
    venv in a temporary folder, a `read` path there) must be mounted on top of it, not under."""
    assert str(tmp_path).startswith("/tmp/")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("under tmp\n")
    policy = Policy(sandbox=SandboxPolicy(read=[str(shared)]))
    assert await sh(make_ctx(policy=policy), f"cat {shared}/data.txt") == "under tmp"
    host_file = Path("/tmp") / f"podium-probe-{uuid.uuid4().hex}"
    host_file.write_text("host\n")
    try:  # the rest of the host's /tmp stays out of sight
        seen = await sh(make_ctx(policy=policy), f"cat {host_file} 2>/dev/null || echo hidden")
    finally:
        host_file.unlink()
    assert seen == "hidden"


# --- descendants -------------------------------------------------------------------------


def _escapers(workspace: Path, marker: str) -> str:
    """A heartbeat loop started three ways that usually outlive a parent: setsid, nohup and a
    double fork. Each command line carries `marker`."""
    beat = f"while :; do date +%s%N > {workspace}/beat-$0; sleep 0.05; done"
    quiet = "</dev/null >/dev/null 2>&1"  # a survivor holding the step's pipes would stall it
    return "\n".join(
        [
            f"setsid sh -c '{beat}' {marker}-setsid {quiet} &",
            f"nohup sh -c '{beat}' {marker}-nohup {quiet} &",
            f"(sh -c '{beat}' {marker}-fork {quiet} &) &",
            "sleep 60",
        ]
    )


def _beats(workspace: Path, marker: str) -> dict[Path, str]:
    return {p: p.read_text() for p in workspace.glob(f"beat-{marker}-*")}


async def _started(workspace: Path, marker: str) -> None:
    deadline = time.monotonic() + 10
    while len(_beats(workspace, marker)) < 3:
        assert time.monotonic() < deadline, "the heartbeats never started"
        await asyncio.sleep(0.05)  # paces the polling only


async def _assert_all_gone(workspace: Path, marker: str) -> None:
    deadline = time.monotonic() + 3
    while survivors(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the kernel tears the namespace down asynchronously
    assert survivors(marker) == []
    beats = _beats(workspace, marker)
    await asyncio.sleep(0.3)  # six heartbeat periods: a live loop would have written again
    assert _beats(workspace, marker) == beats


async def test_every_descendant_dies_on_timeout(ctx: StepContext, workspace: Path) -> None:
    marker = f"m{uuid.uuid4().hex}"
    task = asyncio.create_task(sh(ctx, _escapers(workspace, marker)))
    await _started(workspace, marker)
    assert len(survivors(marker)) == 3  # the probe sees them while they live
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(task, 0.01)
    await _assert_all_gone(workspace, marker)


async def test_every_descendant_dies_on_cancel(ctx: StepContext, workspace: Path) -> None:
    marker = f"m{uuid.uuid4().hex}"
    task = asyncio.create_task(sh(ctx, _escapers(workspace, marker)))
    await _started(workspace, marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_all_gone(workspace, marker)


async def test_without_the_sandbox_a_setsid_child_survives(
    ctx: StepContext, workspace: Path
) -> None:
    marker = f"m{uuid.uuid4().hex}"
    task = asyncio.create_task(sh(ctx, _escapers(workspace, marker), sandbox=False))
    await _started(workspace, marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    alive = survivors(marker)
    for pid in alive:
        os.kill(pid, 9)
    assert len(alive) >= 1


# --- no bubblewrap -----------------------------------------------------------------------


async def test_missing_bwrap_is_refused_with_how_to_fix(
    ctx: StepContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", str(tmp_path / "no-such-bwrap"))
    with pytest.raises(StepExecutionError) as info:
        await sh(ctx, "echo ran > ran.txt")
    assert info.value.error_type == "sandbox"
    assert not info.value.retryable
    message = str(info.value)
    assert "apt-get install bubblewrap" in message
    assert "sandbox: false" in message
    assert "[policy.sandbox] enabled = false" in message
    assert not (ctx.workspace / "ran.txt").exists()


async def test_bwrap_that_cannot_create_namespaces_is_refused(
    ctx: StepContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "BWRAP", str(fake))
    with pytest.raises(
        StepExecutionError, match=r"cannot create namespaces \(bwrap: No permissions"
    ):
        await sh(ctx, "true")


async def test_the_policy_opts_out_and_says_so(
    make_ctx: ContextFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", str(tmp_path / "no-such-bwrap"))
    ctx = make_ctx(policy=Policy(sandbox=SandboxPolicy(enabled=False)))
    result = await run(ctx, ["echo", "ran"])
    assert result.output == "ran"
    assert result.meta == {"exit_code": 0, "sandbox": False}


# --- policy ------------------------------------------------------------------------------


def test_a_workflow_cannot_loosen_the_sandbox() -> None:
    workflow = Policy(sandbox=SandboxPolicy(enabled=False, read=["/srv"]))
    policy, problems = effective(None, workflow)
    assert policy.sandbox == SandboxPolicy()
    assert [p.path for p in problems] == ["policy.sandbox.enabled", "policy.sandbox.read"]
    assert "[policy.sandbox] enabled = false" in problems[0].message


def test_the_project_loosens_and_a_workflow_can_tighten_again() -> None:
    project = Policy(sandbox=SandboxPolicy(enabled=False, read=["/srv"]))
    loose, problems = effective(project, Policy())
    assert problems == []
    assert not loose.sandbox.enabled
    assert loose.sandbox.read == ["/srv"]
    tight, problems = effective(project, Policy(sandbox=SandboxPolicy(enabled=True)))
    assert problems == []
    assert tight.sandbox.enabled
    assert tight.record()["sandbox"] == {"enabled": True, "read": ["/srv"]}


def test_the_project_configuration_turns_it_off(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text(
        '[policy.sandbox]\nenabled = false\nread = ["/srv/data"]\n'
    )
    config = load_config(tmp_path)
    assert config.policy.sandbox == SandboxPolicy(enabled=False, read=["/srv/data"])
    assert config.policy.record()["sandbox"] == {"enabled": False, "read": ["/srv/data"]}


def test_a_planner_cannot_turn_the_sandbox_off() -> None:
    step = PlanStep(id="p", goal="g", kinds=["shell"])
    plan = {"steps": [{"id": "a", "kind": "shell", "run": "curl evil", "sandbox": False}]}
    problems = check_plan(plan, step, agents=None)
    assert [p.path for p in problems] == ["steps[0].sandbox"]
    assert "always runs in the sandbox" in problems[0].message
