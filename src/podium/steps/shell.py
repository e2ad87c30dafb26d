"""The `shell` executor: runs a program in its own process group inside the run's workspace, with
capped output, and kills the whole group when the attempt is cancelled or times out."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shlex
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.errors import StepExecutionError
from podium.spec.model import ShellStep, StepBase
from podium.steps import procs, sandbox
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices
from podium.steps.output import shape_output, with_marker
from podium.steps.steplog import LOG_LIMIT_FACTOR, StepLog, log_path

TERMINATE_GRACE_SECONDS = 2.0
_CHUNK = 64 * 1024
_SHELLS = {"sh": "/bin/sh", "bash": "bash"}


@dataclass(frozen=True, slots=True)
class _Captured:
    """One output stream: the bytes kept (head or tail) and how many the program wrote."""

    data: bytes
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class ShellExecutor:
    """Runs `ShellStep`s: argv by default, `sh -c` / `bash -c` when the step names a shell."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, ShellStep):
            raise TypeError(f"ShellExecutor cannot run a {type(step).__name__}")
        argv = build_argv(step)
        cwd = resolve_cwd(ctx.workspace, step.cwd)
        sandboxed = sandbox.applies(step, ctx)
        absent: list[Path] = []
        if sandboxed:
            await sandbox.ensure_available()
            absent = sandbox.absent_inside(ctx.workspace, ctx.protected)
            env = sandbox.environment(step, build_env(step, ctx, inherit=False))
            _require_program(argv[0], env["PATH"], cwd)
            argv = sandbox.wrap(
                argv,
                workspace=ctx.workspace,
                cwd=cwd,
                protected=ctx.protected,
                read=ctx.policy.sandbox.read,
            )
        else:
            env = {**build_env(step, ctx), **sandbox.secrets(step)}
        procs.expect(ctx.workspace, ctx.run_id, ctx.step_id)  # killed before `record`: see procs
        try:
            proc = await _spawn(argv, cwd, env, step.stdin is not None)
        except BaseException:
            procs.forget(ctx.workspace, ctx.run_id, ctx.step_id)
            raise
        procs.record(ctx.workspace, ctx.run_id, ctx.step_id, proc.pid)
        log = StepLog(
            log_path(ctx.workspace, ctx.run_id, ctx.step_id, ctx.attempt),
            LOG_LIMIT_FACTOR * ctx.output_limit_bytes,
            ctx.redactor,
        )
        created: list[Path] = []
        try:
            stdout, stderr, code = await _supervise(proc, step.stdin, ctx.output_limit_bytes, log)
        finally:
            log.close()
            procs.forget(ctx.workspace, ctx.run_id, ctx.step_id)
            created = sandbox.undo_created(absent)
        if created:
            raise sandbox.created_error(created)
        if code != 0:
            raise _exit_error(code, stderr, sandboxed=sandboxed)
        return _result(step, stdout, stderr, opted_out=sandbox.opted_out(step, ctx))


def build_argv(step: ShellStep) -> list[str]:
    """The program and its arguments; only `shell: sh|bash` gets shell interpretation."""
    if isinstance(step.run, list):
        return list(step.run)
    if step.shell is not None:
        return [_SHELLS[step.shell], "-c", step.run]
    try:
        return shlex.split(step.run)
    except ValueError as exc:
        raise StepExecutionError(
            f"cannot split `run` into arguments ({exc}); fix the quoting, give `run` as a list, "
            "or set `shell: sh`",
            retryable=False,
            error_type="usage",
        ) from None


def build_env(step: ShellStep, ctx: StepContext, *, inherit: bool = True) -> dict[str, str]:
    """The child's environment: the engine's (unless sandboxed), Podium's facts, then declared."""
    env: dict[str, str] = dict(os.environ) if inherit else {}
    env.update(
        PODIUM_RUN_ID=ctx.run_id,
        PODIUM_STEP_ID=ctx.step_id,
        PODIUM_ATTEMPT=str(ctx.attempt),
        PODIUM_IDEMPOTENCY_KEY=ctx.idempotency_key,
        PODIUM_WORKSPACE=str(ctx.workspace),
    )
    env.update(step.env)
    return env


def resolve_cwd(workspace: Path, cwd: str | None) -> Path:
    """The working directory: the workspace or a directory inside it."""
    root = workspace.resolve()
    target = (root / cwd).resolve() if cwd else root
    if not target.is_relative_to(root):
        raise StepExecutionError(
            f"cwd {cwd!r} is outside the workspace {root}; use a directory inside the workspace",
            retryable=False,
            error_type="usage",
        )
    if not target.is_dir():
        raise StepExecutionError(
            f"working directory {target} does not exist; create it in an earlier step or fix `cwd`",
            retryable=False,
            error_type="usage",
        )
    return target


async def _spawn(
    argv: list[str], cwd: Path, env: Mapping[str, str], has_stdin: bool
) -> asyncio.subprocess.Process:
    """Start the child in a group of its own. The child runs before asyncio has connected its
    pipes; a cancel in that window would make asyncio kill the child alone and then wait for the
    rest of its group to let go of the pipes (a backgrounded grandchild: until it exits). So
    the start is shielded, and a cancel waits for it, then stops the whole group."""
    starting = asyncio.ensure_future(_start(argv, cwd, env, has_stdin))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        stopping = asyncio.ensure_future(_stop_started(starting))
        while not stopping.done():  # a second cancel (the run's driver stopping) must not
            with contextlib.suppress(asyncio.CancelledError):  # leave the group running
                await asyncio.shield(stopping)
        raise


async def _stop_started(starting: asyncio.Future[asyncio.subprocess.Process]) -> None:
    """Once the child has started (if it could), stop its group and reap it and its pipes."""
    try:
        proc = await starting
    except Exception:
        return  # it could not start: nothing to stop
    if proc.stdin is not None:
        proc.stdin.close()
    pipes = [p for p in (proc.stdout, proc.stderr) if p is not None]
    await _terminate(proc, [asyncio.create_task(_discard(p)) for p in pipes])


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(_CHUNK):
        pass


async def _start(
    argv: list[str], cwd: Path, env: Mapping[str, str], has_stdin: bool
) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if has_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise _spawn_error(argv[0], exc) from None


def _require_program(program: str, path: str, cwd: Path) -> None:
    """Inside the sandbox bwrap, not us, starts the program: say what is wrong with it before."""
    if "/" not in program:
        if shutil.which(program, path=path) is None:
            raise _spawn_error(program, FileNotFoundError(program))
    elif not (cwd / program).is_file():
        raise _spawn_error(program, FileNotFoundError(program))
    elif not os.access(cwd / program, os.X_OK):
        raise _spawn_error(program, PermissionError(program))


def _spawn_error(program: str, exc: OSError) -> StepExecutionError:
    if isinstance(exc, FileNotFoundError):
        hint = f"command not found: {program!r}; install it, add it to PATH or give its full path"
    elif isinstance(exc, PermissionError):
        hint = f"{program!r} is not executable; `chmod +x` it or run it through its interpreter"
    elif exc.errno == errno.ENOEXEC:
        hint = f"{program!r} is not a program this system can run (a script without a #! line?)"
    else:
        return StepExecutionError(f"cannot start {program!r}: {exc}", error_type="spawn")
    return StepExecutionError(hint, retryable=False, error_type="spawn")


async def _supervise(
    proc: asyncio.subprocess.Process, stdin: str | None, limit: int, log: StepLog
) -> tuple[_Captured, _Captured, int]:
    """Feed stdin, drain both pipes (into the log too) and wait; on any abnormal exit kill the
    process group."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    out = asyncio.create_task(_drain(proc.stdout, limit, log, "stdout", keep_tail=False))
    err = asyncio.create_task(_drain(proc.stderr, limit, log, "stderr", keep_tail=True))
    tasks: list[asyncio.Task[Any]] = [out, err]
    if stdin is not None:
        tasks.append(asyncio.create_task(_feed(proc, stdin)))
    try:
        # asyncio.wait, not gather: a cancellation must not stop the drains (see _reap).
        await asyncio.wait(tasks)
        for task in tasks:
            task.result()
        code = await proc.wait()
    except BaseException:
        await _terminate(proc, tasks)
        raise
    return out.result(), err.result(), code


async def _drain(
    stream: asyncio.StreamReader, limit: int, log: StepLog, name: str, *, keep_tail: bool
) -> _Captured:
    """Read a pipe to its end, keeping at most `limit` bytes (the first, or the last), and
    writing every line to the attempt's log."""
    kept = bytearray()
    total = 0
    while chunk := await stream.read(_CHUNK):
        total += len(chunk)
        log.feed(name, chunk)
        if keep_tail:
            kept += chunk
            del kept[: max(len(kept) - limit, 0)]
        elif len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return _Captured(bytes(kept), total)


async def _feed(proc: asyncio.subprocess.Process, text: str) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(text.encode())
        await proc.stdin.drain()
        proc.stdin.close()
        await proc.stdin.wait_closed()


async def _terminate(proc: asyncio.subprocess.Process, tasks: list[asyncio.Task[Any]]) -> None:
    """SIGTERM the group, give it a grace period, SIGKILL what is left, then reap."""
    pgid = proc.pid  # start_new_session: the child leads a group with its own pid
    _signal_group(pgid, signal.SIGTERM)
    try:
        await _wait_group_exit(proc, pgid, TERMINATE_GRACE_SECONDS)
    finally:
        _signal_group(pgid, signal.SIGKILL)
        await _reap(proc, tasks)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_group_exit(proc: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
    """Wait until the child has exited and no member of its group is left (or `grace` is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)
    while loop.time() < deadline and _group_alive(pgid):
        await asyncio.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process is in the group. Zombies count as gone: where no
    init reaps orphans (containers), they would otherwise hold every cancel for the grace period."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def _reap(proc: asyncio.subprocess.Process, tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for the killed child and let the drains reach end-of-file so the pipes close."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), TERMINATE_GRACE_SECONDS)
    _, pending = await asyncio.wait(tasks, timeout=TERMINATE_GRACE_SECONDS)
    for task in pending:
        task.cancel()
    if pending:  # a process outside the group still holds a pipe: close our ends, or they leak
        await asyncio.gather(*pending, return_exceptions=True)
        transport = getattr(proc, "_transport", None)  # asyncio has no public way to close them
        if transport is not None:
            transport.close()
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it


def _exit_error(code: int, stderr: _Captured, *, sandboxed: bool) -> StepExecutionError:
    if code < 0:
        head = f"killed by signal {_signal_name(-code)}"
    elif sandboxed and 128 < code < 128 + signal.NSIG:  # bwrap reports a signal as 128 + it
        head = f"killed by signal {_signal_name(code - 128)} (exit code {code})"
    else:
        head = f"exited with code {code}"
    tail = _last_lines(stderr.text(), 1000)
    return StepExecutionError(f"{head}: {tail}" if tail else head, error_type="exit")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _last_lines(text: str, max_chars: int) -> str:
    """The end of `text`, at most `max_chars`, starting at a line boundary when one is near."""
    text = text.rstrip()
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < max_chars // 2 else tail


def _result(
    step: ShellStep, stdout: _Captured, stderr: _Captured, *, opted_out: bool
) -> StepResult:
    text = stdout.text()
    cut = (len(stdout.data), stdout.total) if stdout.truncated else None
    if cut is not None:
        text = with_marker(text, *cut)
    elif text.endswith("\n"):
        text = text[:-1]
    meta: dict[str, object] = {"exit_code": 0}
    if opted_out:
        meta["sandbox"] = False  # visible in `show`: it ran with the engine's rights
    if stderr.total:
        meta["stderr_tail"] = stderr.text()[-2000:]
    return StepResult(shape_output(text, step.output, step_id=step.id, cut=cut), meta=meta)
