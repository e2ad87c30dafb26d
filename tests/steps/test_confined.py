"""Confined files attacked: escape vectors through the file executor and the read_file and
write_file tools, a symlink swapped to and fro while reads and writes run, hard links, and the
store surviving a write aimed at it. Each vector counts what got through; 0 is the only pass."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from podium import Engine
from podium.config import load_config
from podium.errors import StepExecutionError
from podium.spec.files import FilePolicy
from podium.spec.model import FileStep
from podium.spec.policy import Policy, effective
from podium.steps.base import StepContext
from podium.steps.file import FileExecutor
from podium.tools import ToolContext, ToolError, builtin_tools

SECRET = "SECRET-outside"
TOOLS = builtin_tools()
Setup = Callable[[Path, Path], None]


class Box:
    """A workspace with Podium's state in it, and an outside folder holding a secret."""

    def __init__(self, tmp_path: Path) -> None:
        self.ws = tmp_path / "ws"
        self.outside = tmp_path / "outside"
        for folder in (self.ws / ".podium", self.ws / "agents", self.outside):
            folder.mkdir(parents=True)
        (self.outside / "secret.txt").write_text(SECRET)
        (self.ws / ".podium" / "podium.db").write_text("STORE")
        (self.ws / "agents" / "x.md").write_text("AGENT")
        (self.ws / "podium.toml").write_text("CONFIG")
        self.protected = (self.ws / ".podium" / "podium.db", self.ws / "podium.toml")
        self.protected += (self.ws / "agents",)

    def snapshot(self) -> dict[str, str]:
        files = [*self.outside.rglob("*"), self.ws / ".podium" / "podium.db", *self.protected]
        return {str(p): p.read_text() for p in files if p.is_file()}


def _link(name: str, target: Callable[[Path, Path], str | Path]) -> Setup:
    return lambda ws, out: (ws / name).symlink_to(target(ws, out))


def _hardlink(name: str, target: Callable[[Path, Path], Path]) -> Setup:
    return lambda ws, out: os.link(target(ws, out), ws / name)


def _nested_link(ws: Path, out: Path) -> None:
    (ws / "real").mkdir()
    (ws / "real" / "sub").symlink_to(out)


def _fifo(ws: Path, out: Path) -> None:
    os.mkfifo(ws / "fifo")


def _none(ws: Path, out: Path) -> None:
    return None


# name -> (setup, path (given the workspace), ops it is tried with)
ALL = ("read", "write", "append")
VECTORS: dict[str, tuple[Setup, Callable[[Path], str], tuple[str, ...]]] = {
    "dotdot": (_none, lambda ws: "../outside/secret.txt", ALL),
    "dotdot in the middle": (_none, lambda ws: "a/../../outside/secret.txt", ALL),
    "absolute outside": (_none, lambda ws: str(ws.parent / "outside" / "secret.txt"), ALL),
    "absolute climbing": (_none, lambda ws: f"{ws}/../outside/secret.txt", ALL),
    "/etc/passwd": (_none, lambda ws: "/etc/passwd", ("read",)),
    "symlink file out": (_link("l.txt", lambda w, o: o / "secret.txt"), lambda ws: "l.txt", ALL),
    "symlink dir in the middle": (_link("d", lambda w, o: o), lambda ws: "d/secret.txt", ALL),
    "nested symlink dir": (_nested_link, lambda ws: "real/sub/secret.txt", ALL),
    "relative symlink up": (
        _link("up", lambda w, o: ".."),
        lambda ws: "up/outside/secret.txt",
        ALL,
    ),
    "symlink to /etc/passwd": (_link("pw", lambda w, o: "/etc/passwd"), lambda ws: "pw", ("read",)),
    "dangling symlink": (_link("dang", lambda w, o: o / "new.txt"), lambda ws: "dang", ALL),
    "dangling symlink dir": (_link("dd", lambda w, o: o / "nd"), lambda ws: "dd/new.txt", ALL),
    "symlink loop": (_link("loop", lambda w, o: "loop"), lambda ws: "loop", ALL),
    "symlink loop dir": (_link("lp", lambda w, o: "lp"), lambda ws: "lp/x.txt", ALL),
    "store": (_none, lambda ws: ".podium/podium.db", ALL),
    "state via ..": (_none, lambda ws: ".podium/../.podium/x", ALL),
    "state via ./": (_none, lambda ws: "./.podium/podium.db", ALL),
    "state folder": (_none, lambda ws: ".podium", ALL),
    "state absolute": (_none, lambda ws: str(ws / ".podium" / "podium.db"), ALL),
    "symlink to state": (_link("st", lambda w, o: ".podium"), lambda ws: "st/podium.db", ALL),
    "agents file": (_none, lambda ws: "agents/x.md", ALL),
    "agents new file": (_none, lambda ws: "agents/new.md", ALL),
    "symlink to agents": (_link("ag", lambda w, o: "agents"), lambda ws: "ag/x.md", ALL),
    "project config": (_none, lambda ws: "podium.toml", ALL),
    "project config absolute": (_none, lambda ws: str(ws / "podium.toml"), ALL),
    "hardlink outside": (
        _hardlink("h.txt", lambda w, o: o / "secret.txt"),
        lambda ws: "h.txt",
        ALL,
    ),
    "hardlink to the store": (
        _hardlink("h.db", lambda w, o: w / ".podium" / "podium.db"),
        lambda ws: "h.db",
        ALL,
    ),
    "hardlink to the config": (
        _hardlink("h.toml", lambda w, o: w / "podium.toml"),
        lambda ws: "h.toml",
        ALL,
    ),
    "fifo": (_fifo, lambda ws: "fifo", ALL),
    "/dev/zero via symlink": (_link("z", lambda w, o: "/dev/zero"), lambda ws: "z", ALL),
    "NUL byte": (_none, lambda ws: "a\0b.txt", ALL),
    "300-byte name": (_none, lambda ws: "n" * 300, ALL),
    "5000-byte path": (_none, lambda ws: "/".join(["d" * 100] * 50), ALL),
    "the workspace itself": (_none, lambda ws: ".", ALL),
}


def _step_ctx(box: Box, policy: Policy | None = None) -> StepContext:
    return StepContext(
        run_id="run-1",
        step_id="s",
        attempt=1,
        idempotency_key="run-1:s:1",
        workspace=box.ws,
        output_limit_bytes=1 << 20,
        policy=policy or Policy(),
        protected=box.protected,
    )


def _tool_ctx(box: Box) -> ToolContext:
    return ToolContext(
        workspace=box.ws, run_id="run-1", step_id="s", output_limit_bytes=1 << 20,
        protected=box.protected,
    )  # fmt: skip


async def _through_executor(box: Box, op: str, path: str) -> object:
    content = None if op == "read" else "PWNED"
    # built unvalidated: the executor must hold even where the model's own checks would not
    step = FileStep.model_construct(id="s", op=op, path=path, content=content)
    return (await FileExecutor().execute(step, _step_ctx(box))).output


async def _through_tool(box: Box, op: str, path: str) -> object:
    if op == "read":
        return await TOOLS["read_file"].call({"path": path}, _tool_ctx(box))
    return await TOOLS["write_file"].call({"path": path, "content": "PWNED"}, _tool_ctx(box))


@pytest.mark.parametrize("surface", ["executor", "tool"])
async def test_no_escape_vector_gets_through(tmp_path: Path, surface: str) -> None:
    tried, through, unclear = 0, [], []
    for index, (name, (setup, spelled, ops)) in enumerate(VECTORS.items()):
        box = Box(tmp_path / str(index))
        setup(box.ws, box.outside)
        before = box.snapshot()
        for op in ops if surface == "executor" else [o for o in ops if o != "append"]:
            tried += 1
            call = _through_executor if surface == "executor" else _through_tool
            try:
                output = await call(box, op, spelled(box.ws))
            except (StepExecutionError, ToolError) as exc:
                if "through a symbolic link" not in str(exc) and "path" not in str(exc):
                    unclear.append((name, op, str(exc)))
                continue
            through.append((name, op, repr(output)[:80]))
        changed = box.snapshot() != before or (box.outside / "new.txt").exists()
        if changed or (box.outside / "nd").exists():
            through.append((name, "changed files", ""))
    assert tried >= 60
    assert through == [], f"{len(through)} of {tried} got through"
    assert unclear == []


async def test_errors_say_what_to_fix(tmp_path: Path) -> None:
    box = Box(tmp_path)
    (box.ws / "l.txt").symlink_to(box.outside / "secret.txt")
    os.link(box.outside / "secret.txt", box.ws / "h.txt")
    expected = {
        "l.txt": r"goes through a symbolic link \(l.txt\); file steps do not follow links",
        "../x": "outside the workspace",
        ".podium/podium.db": r"\[policy.files\] podium_state = true",
        "h.txt": "hard-linked elsewhere",
        "a\0b": "contains a NUL byte",
        "n" * 300: "names may be at most 255 bytes",
        "d/" * 2100: "paths may be at most 4096 bytes",
    }
    for path, message in expected.items():
        with pytest.raises(StepExecutionError, match=message) as info:
            await _through_executor(box, "read", path)
        assert info.value.error_type == "path"
        assert info.value.retryable is False


async def test_a_symlink_swapped_to_and_fro_never_leads_outside(tmp_path: Path) -> None:
    box = Box(tmp_path)
    (box.ws / "flip").mkdir()
    (box.ws / "flip" / "secret.txt").write_text("inside")
    stop = threading.Event()

    flip, parked = box.ws / "flip", box.ws / "parked"

    def flipper() -> None:  # flip is a real folder, then a link to outside, then a folder ...
        while not stop.is_set():
            with contextlib.suppress(OSError):
                os.rename(flip, parked)
            with contextlib.suppress(OSError):
                flip.symlink_to(box.outside)
            time.sleep(0)
            with contextlib.suppress(OSError):
                if flip.is_symlink():
                    flip.unlink()
                elif flip.is_dir() and parked.is_dir():  # a write made the missing folder
                    shutil.rmtree(flip)
                os.rename(parked, flip)

    thread = threading.Thread(target=flipper)
    thread.start()
    seen: dict[str, int] = {}
    started = time.monotonic()
    try:
        for index in range(200):
            for op in ALL:
                path = "flip/secret.txt" if op == "read" else f"flip/w{index}.txt"
                try:
                    output = await _through_executor(box, op, path)
                    seen[str(output)[:20]] = seen.get(str(output)[:20], 0) + 1
                except StepExecutionError:
                    seen["refused"] = seen.get("refused", 0) + 1
            if time.monotonic() - started > 5:
                break
    finally:
        stop.set()
        thread.join()
    assert SECRET not in seen
    assert sorted(p.name for p in box.outside.iterdir()) == ["secret.txt"]  # nothing written
    assert (box.outside / "secret.txt").read_text() == SECRET
    assert seen.get("refused", 0) > 0  # the swap was in place some of the time


async def test_podium_state_opt_out_lets_the_project_reach_it(tmp_path: Path) -> None:
    box = Box(tmp_path)
    allowed = Policy(files=FilePolicy(podium_state=True))
    step = FileStep(id="s", op="read", path="podium.toml")
    result = await FileExecutor().execute(step, _step_ctx(box, allowed))
    assert result.output == "CONFIG"
    merged, problems = effective(None, allowed)
    assert merged.files.podium_state is False
    assert [p.path for p in problems] == ["policy.files.podium_state"]
    merged, problems = effective(allowed, None)
    assert merged.files.podium_state is True
    assert problems == []
    assert merged.record()["files"] == {"podium_state": True}


async def test_the_store_survives_a_write_aimed_at_it(tmp_path: Path) -> None:
    workspace = tmp_path / "project"
    workspace.mkdir()
    store = workspace / ".podium" / "podium.db"
    ok = {"name": "ok", "steps": [{"id": "a", "kind": "shell", "run": "true", "sandbox": False}]}
    wiped = []
    async with await Engine.open(store, workspace=workspace) as engine:
        first = await engine.run(ok)
        for target in (".podium/podium.db", ".podium/podium.db-wal", str(store)):
            step = {"id": "wipe", "kind": "file", "op": "write", "path": target, "content": "x"}
            state = await engine.run({"name": "wipe", "steps": [step]})
            assert state.steps["wipe"].status == "failed"
            assert state.steps["wipe"].error_type == "path"
            wiped.append(state.run_id)
        assert (await engine.state(first.run_id)).outcome == first.outcome
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with await Engine.open(store, workspace=workspace) as engine:  # every run still there
        assert (await engine.state(first.run_id)).steps["a"].status == "succeeded"
        for run_id in wiped:
            assert (await engine.state(run_id)).steps["wipe"].status == "failed"


async def test_a_run_cannot_rewrite_the_project_configuration_or_agents(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "helper.md").write_text("AGENT")
    config = project / "pyproject.toml"
    config.write_text('[tool.podium]\nagents = "agents"\n')
    targets = ["pyproject.toml", "podium.toml", ".mcp.json", "agents/helper.md", "agents/new.md"]
    steps = [
        {"id": f"w{i}", "kind": "file", "op": "write", "path": t, "content": "x"}
        for i, t in enumerate(targets)
    ]
    async with await Engine.open(
        project / "p.db", workspace=project, config=load_config(project)
    ) as engine:
        state = await engine.run({"name": "rewrite", "steps": steps, "on_failure": "collect"})
    errors = {t: state.steps[f"w{i}"].error_type for i, t in enumerate(targets)}
    assert errors == dict.fromkeys(targets, "path")
    assert config.read_text() == '[tool.podium]\nagents = "agents"\n'
    assert (project / "agents" / "helper.md").read_text() == "AGENT"
    assert not (project / "podium.toml").exists()
    assert not (project / ".mcp.json").exists()
    assert [p.name for p in (project / "agents").iterdir()] == ["helper.md"]
