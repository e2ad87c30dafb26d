"""The shell sandbox (SPEC F16): a shell step's program runs inside bubblewrap with no network,
its own PID namespace (every descendant dies with it), a read-only view of the system, only the
run's workspace writable (its `.podium/` and Podium's protected files read-only), a private
/tmp, and an environment holding only what the step declares.

Where bubblewrap cannot run, shell steps are refused with a message saying how to install it or
opt out; never a silent fallback. `BWRAP` is the program used: `bwrap` on the engine's PATH,
looked up once (a test points it elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from podium.errors import StepExecutionError
from podium.spec.model import ShellStep
from podium.steps.base import StepContext

BWRAP: str | None = shutil.which("bwrap")
PROBE_TIMEOUT_SECONDS = 10.0
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt")
_OPT_OUT = (
    "install it, or opt out with `sandbox: false` on the step or `[policy.sandbox] enabled = "
    "false` in podium.toml"
)
_probed: dict[str, str | None] = {}  # bwrap path ("": none) -> None (works) or why not


def applies(step: ShellStep, ctx: StepContext) -> bool:
    """Whether this step runs sandboxed: unless the step or the run's policy opts out."""
    return step.sandbox and ctx.policy.sandbox.enabled


def opted_out(step: ShellStep, ctx: StepContext) -> bool:
    """Whether the step (`sandbox: false`) or the policy turned the sandbox off (to show: it ran
    with the engine's rights)."""
    return not applies(step, ctx)


async def ensure_available() -> None:
    """Refuse (non-retryable, error_type "sandbox") when bubblewrap is missing or cannot create
    namespaces here. Probed once per process and bwrap path."""
    program = BWRAP or ""
    if program not in _probed:
        _probed[program] = await _probe(program)
    reason = _probed[program]
    if reason is not None:
        raise StepExecutionError(
            f"shell steps run in a bubblewrap sandbox, but {reason}; {_OPT_OUT}",
            retryable=False,
            error_type="sandbox",
        )


async def _probe(program: str) -> str | None:
    if not program:
        return "bwrap is not on the engine's PATH (apt-get install bubblewrap)"
    if not os.access(program, os.X_OK):
        return f"bwrap is not installed at {program} (apt-get install bubblewrap)"
    argv = wrap(["true"], workspace=Path("/"), cwd=Path("/"), protected=(), read=(), probe=True)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        return f"bwrap cannot start ({exc or 'timed out'})"
    if proc.returncode != 0:
        detail = err.decode("utf-8", errors="replace").strip()[-500:]
        return f"bwrap cannot create namespaces ({detail or f'exit code {proc.returncode}'})"
    return None


def wrap(
    argv: list[str],
    *,
    workspace: Path,
    cwd: Path,
    protected: Iterable[Path],
    read: Iterable[str],
    probe: bool = False,
) -> list[str]:
    """The bwrap command line that runs `argv` in `cwd` inside the sandbox of `workspace`."""
    args = [BWRAP or "bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    args += _system_mounts()
    # the private /tmp first: a mount after it may lie inside it (an engine whose venv, or a
    # workspace, is under /tmp), and a mount before it would be hidden by it
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in dict.fromkeys([*_python_roots(), *read]):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    if not probe:
        root = str(workspace.resolve())
        args += ["--bind", root, root]
        for path in _read_only_inside(workspace.resolve(), protected):
            args += ["--ro-bind", path, path]
    args += ["--chdir", str(cwd), "--", *argv]
    return args


@functools.cache
def _system_mounts() -> tuple[str, ...]:
    """The host system, read-only; worked out once per process (it does not change)."""
    args: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


@functools.cache
def _python_roots() -> tuple[str, ...]:
    """The engine's Python (its prefix and the one it was built from), so `python3` works; a
    folder inside another one listed is left out (it is mounted with it)."""
    roots = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    found = [os.path.realpath(path) for path in roots if path and not path.startswith(_SYSTEM)]
    outer = [path for path in found if not any(path.startswith(f"{o}/") for o in found)]
    return tuple(dict.fromkeys(outer))


def _read_only_inside(root: Path, protected: Iterable[Path]) -> list[str]:
    """The workspace's `.podium/` and each protected path inside the workspace that exists."""
    paths = [root / ".podium", *protected]
    inside = []
    for path in paths:
        resolved = Path(os.path.realpath(path))
        if resolved.is_relative_to(root) and resolved.exists():
            inside.append(str(resolved))
    return list(dict.fromkeys(inside))


def absent_inside(workspace: Path, protected: Iterable[Path]) -> list[Path]:
    """The protected paths inside the workspace that do not exist yet (an absent `podium.toml`,
    `.mcp.json`, agents folder): bwrap cannot mount what is not there, so `undo_created` looks
    for them after the step."""
    root = workspace.resolve()
    return [
        path
        for path in dict.fromkeys(Path(os.path.realpath(p)) for p in protected)
        if path.is_relative_to(root) and not os.path.lexists(path)
    ]


def undo_created(absent: Iterable[Path]) -> list[Path]:
    """Which of the `absent` paths the step created; a file or link it made is removed (a
    folder is left, for a person to look at)."""
    created = []
    for path in absent:
        if not os.path.lexists(path):
            continue
        created.append(path)
        if os.path.islink(path) or not os.path.isdir(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return created


def created_error(created: Iterable[Path]) -> StepExecutionError:
    shown = ", ".join(str(path) for path in created)
    return StepExecutionError(
        f"the step created {shown}, which configures Podium for later runs; a sandboxed step "
        "may not (files were removed, a folder is left for you to remove) — write Podium's "
        "configuration yourself",
        retryable=False,
        error_type="sandbox",
    )


def environment(step: ShellStep, facts: Mapping[str, str]) -> dict[str, str]:
    """The sandbox's whole environment: a PATH to the system and the engine's Python, HOME=/tmp,
    a UTF-8 locale, Podium's `facts`, the step's `env:` and the secrets it names."""
    python_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
    }
    env.update(facts)
    env.update(step.env)
    env.update(secrets(step))
    return env


def secrets(step: ShellStep) -> dict[str, str]:
    """The values of the secrets the step names, from the engine's environment."""
    values = {}
    for name in step.secrets:
        value = os.environ.get(name)
        if value is None:
            raise StepExecutionError(
                f"secret {name} is not set in the engine's environment; export it before "
                "starting Podium or remove it from the step's `secrets:`",
                retryable=False,
                error_type="usage",
            )
        values[name] = value
    return values
