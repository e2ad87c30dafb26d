"""The shell executor with real subprocesses: exit codes, env, output caps, process-group kills."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from podium.errors import StepExecutionError
from podium.spec.model import ShellStep
from podium.steps.base import StepContext, StepResult
from podium.steps.shell import ShellExecutor

from .conftest import ContextFactory


async def run(ctx: StepContext, run: str | list[str], **fields: Any) -> StepResult:
    return await ShellExecutor().execute(ShellStep(id="s", run=run, **fields), ctx)


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie left for its (new) parent to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


async def wait_for_pid(path: Path, timeout_seconds: float = 10.0) -> int:
    """The pid a step writes to `path`, as soon as the file appears (polled until a deadline)."""
    deadline = time.monotonic() + timeout_seconds
    while (pid := read_pid(path)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        await asyncio.sleep(0.02)  # paces the polling only
    return pid


async def test_stdout_with_one_trailing_newline_removed(ctx: StepContext) -> None:
    result = await run(ctx, ["printf", "a\\n\\n"])
    assert result.output == "a\n"
    assert result.meta == {"exit_code": 0}


async def test_argv_has_no_shell_interpretation(ctx: StepContext) -> None:
    assert (await run(ctx, "echo $HOME 'a  b'")).output == "$HOME a  b"


@pytest.mark.parametrize("shell", ["sh", "bash"])
async def test_a_named_shell_runs_pipes(ctx: StepContext, shell: str) -> None:
    assert (await run(ctx, "printf 'b\\na\\n' | sort | head -1", shell=shell)).output == "a"


async def test_stdin_and_json_output(ctx: StepContext) -> None:
    result = await run(ctx, ["cat"], stdin='{"x": [1, 2]}', output="json")
    assert result.output == {"x": [1, 2]}


async def test_stderr_tail_in_meta(ctx: StepContext) -> None:
    result = await run(ctx, "echo out; echo warn >&2", shell="sh")
    assert result.output == "out"
    assert result.meta == {"exit_code": 0, "stderr_tail": "warn\n"}


async def test_nonzero_exit_is_retryable_with_stderr(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError) as info:
        await run(ctx, "echo first >&2; echo 'it broke' >&2; exit 3", shell="sh")
    assert str(info.value) == "exited with code 3: first\nit broke"
    assert info.value.retryable is True
    assert info.value.error_type == "exit"


async def test_long_stderr_is_cut_to_its_last_lines(ctx: StepContext) -> None:
    script = "for i in $(seq 1 500); do echo line-$i >&2; done; exit 1"
    with pytest.raises(StepExecutionError) as info:
        await run(ctx, script, shell="sh")
    message = str(info.value)
    assert message.endswith("line-500")
    assert "line-1\n" not in message
    assert len(message) < 1100


async def test_killed_by_signal_names_it(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="killed by signal SIGKILL"):
        await run(ctx, "kill -9 $$", shell="sh")


async def test_environment(make_ctx: ContextFactory, workspace: Path) -> None:
    ctx = make_ctx()
    script = (
        "echo $PODIUM_RUN_ID $PODIUM_STEP_ID $PODIUM_ATTEMPT $PODIUM_IDEMPOTENCY_KEY;"
        "echo $PODIUM_WORKSPACE; echo $PODIUM_RUN_ID $PATH_SEEN"
    )
    env = {"PODIUM_RUN_ID": "declared wins", "PATH_SEEN": "yes"}
    result = await run(ctx, script, shell="sh", env=env)
    assert result.output.split("\n") == [
        "declared wins s 1 run-1:s:1",
        str(workspace),
        "declared wins yes",
    ]


@pytest.fixture
def root(workspace: Path) -> str:
    """The workspace's real path, with a `sub` directory in it."""
    (workspace / "sub").mkdir()
    return os.path.realpath(workspace)


async def test_runs_in_the_workspace_or_a_cwd_inside_it(ctx: StepContext, root: str) -> None:
    assert (await run(ctx, ["pwd"])).output == root
    assert (await run(ctx, ["pwd"], cwd="sub")).output == os.path.join(root, "sub")


@pytest.mark.parametrize("cwd", ["..", "sub/../..", "/tmp"])
async def test_cwd_escape_is_refused(ctx: StepContext, cwd: str) -> None:
    with pytest.raises(StepExecutionError, match="outside the workspace") as info:
        await run(ctx, ["pwd"], cwd=cwd)
    assert info.value.retryable is False


async def test_missing_cwd_is_a_permanent_error(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="does not exist") as info:
        await run(ctx, ["pwd"], cwd="nope")
    assert info.value.retryable is False


async def test_command_not_found(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="command not found: 'no-such-cmd-xyz'") as info:
        await run(ctx, "no-such-cmd-xyz --flag")
    assert info.value.retryable is False
    assert "PATH" in str(info.value)


async def test_not_executable(ctx: StepContext, workspace: Path) -> None:
    (workspace / "script.sh").write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(StepExecutionError, match="not executable") as info:
        await run(ctx, "./script.sh")
    assert info.value.retryable is False


async def test_bad_quoting_is_a_permanent_error(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="quoting") as info:
        await run(ctx, "echo 'unclosed")
    assert info.value.retryable is False


async def test_output_is_capped_with_a_marker(make_ctx: ContextFactory) -> None:
    ctx = make_ctx(output_limit_bytes=64 * 1024)
    code = "import sys; sys.stdout.write('x' * 5_000_000); sys.stderr.write('e' * 3_000_000)"
    result = await run(ctx, [sys.executable, "-c", code])
    body, marker = result.output.rsplit("\n", 1)
    assert body == "x" * 65536
    assert marker == "…[truncated: kept 65536 of 5000000 bytes]"
    assert result.meta == {"exit_code": 0, "stderr_tail": "e" * 2000}


async def test_cancellation_kills_the_whole_process_group(
    ctx: StepContext, workspace: Path
) -> None:
    # `sleep 60`: a grandchild that outlives the test unless the group kill reaches it
    script = "sleep 60 & echo $! > grandchild.pid; echo $$ > child.pid; wait"
    # unsandboxed: host pids and the group kill (test_sandbox.py covers the PID namespace)
    task = asyncio.create_task(run(ctx, script, shell="sh", sandbox=False))
    grandchild = await wait_for_pid(workspace / "grandchild.pid")
    child = await wait_for_pid(workspace / "child.pid")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 3
    assert is_gone(child)
    assert is_gone(grandchild)


def children_of_this_process() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rfind(")") + 2 :].split()[1]) == os.getpid():
            found.append(int(entry.name))
    return found


async def test_a_cancel_while_the_child_starts_still_kills_its_whole_group(
    ctx: StepContext, workspace: Path
) -> None:
    """The child runs before asyncio has connected its pipes; a cancel in that window (a run
    cancelled as a step starts, under load) once killed only the child and then waited for the
    rest of the group, which held the pipes, to exit on its own: here 30 s."""
    script = "sleep 30 & echo $! > grandchild.pid; echo $$ > child.pid; wait"
    before = set(children_of_this_process())
    task = asyncio.create_task(run(ctx, script, shell="sh", sandbox=False))
    deadline = time.monotonic() + 10
    while not set(children_of_this_process()) - before:  # one loop step at a time until the
        assert time.monotonic() < deadline, "the step's child never started"  # fork
        await asyncio.sleep(0)
    while read_pid(workspace / "grandchild.pid") is None:  # the loop is held meanwhile: the
        assert time.monotonic() < deadline, "the step's child never ran"  # pipes stay unconnected
        time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop is the point
    grandchild = read_pid(workspace / "grandchild.pid")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 3
    assert grandchild is not None
    assert is_gone(grandchild)


async def test_timeout_kills_a_group_that_ignores_sigterm(
    ctx: StepContext, workspace: Path
) -> None:
    script = "trap '' TERM; sleep 60 & echo $! > grandchild.pid; wait; wait"
    scopes: list[asyncio.Timeout] = []

    async def bounded() -> None:
        async with asyncio.timeout(None) as scope:  # armed below, once the group is up
            scopes.append(scope)
            await run(ctx, script, shell="sh", sandbox=False)  # host pids, as above

    task = asyncio.create_task(bounded())
    grandchild = await wait_for_pid(workspace / "grandchild.pid")
    scopes[0].reschedule(asyncio.get_running_loop().time())  # the runtime's timeout fires now
    with pytest.raises(TimeoutError):
        await task
    assert is_gone(grandchild)


async def test_the_child_leads_its_own_process_group(ctx: StepContext) -> None:
    code = "import os; print(os.getpgrp(), os.getpid())"
    pgrp, pid = (await run(ctx, [sys.executable, "-c", code], sandbox=False)).output.split()
    assert pgrp == pid
    assert int(pgrp) != os.getpgrp()
