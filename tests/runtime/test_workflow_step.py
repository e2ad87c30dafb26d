"""`workflow` steps through the engine and a real SQLite store: a child run per step, linked
both ways; its end is the step's end; cancelling the parent stops the child; budgets are pooled
across the tree and `depth` binds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from podium.core.children import child_run_id
from podium.core.state import StepStatus
from podium.errors import SpecError
from podium.runtime.engine import Engine


def _write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _child(tmp_path: Path, steps: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    doc = {
        "name": "child",
        "inputs": {"who": {"type": "string"}},
        "steps": steps
        or [
            {"id": "hello", "kind": "shell", "run": "echo hello ${{ inputs.who }}"},
            {"id": "count", "kind": "shell", "shell": "sh", "run": "echo ran >> child.ran"},
        ],
        **extra,
    }
    return _write(tmp_path, "child.yaml", doc)


def _parent(**step: Any) -> dict[str, Any]:
    sub = {"id": "sub", "kind": "workflow", "workflow": "child.yaml", "inputs": {"who": "you"}}
    return {
        "name": "parent",
        "steps": [
            {**sub, **step},
            {
                "id": "after",
                "kind": "shell",
                "env": {"OUT": "${{ steps.sub.output.hello }}"},  # a child's output is data
                "shell": "sh",
                "run": 'echo "$OUT"',
                "needs": ["sub"],
            },
        ],
    }


async def _engine(tmp_path: Path, **options: Any) -> Engine:
    return await Engine.open(tmp_path / "podium.db", workspace=tmp_path, **options)


async def test_child_succeeds_and_its_outputs_are_the_steps_output(tmp_path: Path) -> None:
    _child(tmp_path)
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(_parent())
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        sub = state.steps["sub"]
        assert sub.output == {"hello": "hello you", "count": ""}
        assert state.steps["after"].output == "hello you"
        [link] = state.children["sub"]
        assert link.run_id == child_run_id(run_id, "sub", 0)
        assert link.status == "succeeded"
        child = await engine.state(link.run_id)
        assert child.status == "succeeded"
        assert child.parent == {"run_id": run_id, "step_id": "sub"}
        assert child.depth == 1
        kinds = [e.event.kind for e in await engine.store.read(run_id)]
        assert kinds.count("child.started") == 1
        assert kinds.count("child.completed") == 1
        assert (await engine.store.get_run(link.run_id)).status == "succeeded"


async def test_child_failure_fails_the_step_naming_the_child(tmp_path: Path) -> None:
    _child(tmp_path, [{"id": "boom", "kind": "shell", "shell": "sh", "run": "exit 3"}])
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(_parent())
        state = await engine.wait(run_id)
        assert state.status == "failed"
        sub = state.steps["sub"]
        assert sub.status is StepStatus.FAILED
        assert sub.error_type == "child"
        assert f"child run {child_run_id(run_id, 'sub', 0)} failed" in (sub.error or "")
        assert "boom" in (sub.error or "")
        assert state.steps["after"].status is StepStatus.CANCELLED  # fail_fast


async def test_registered_name_and_workflows_folder(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    doc = {"name": "greet", "steps": [{"id": "hi", "kind": "shell", "run": "echo hi"}]}
    _write(tmp_path / "workflows", "greet.yaml", doc)
    registered = {"name": "shout", "steps": [{"id": "hi", "kind": "shell", "run": "echo HI"}]}
    from podium.spec.model import Workflow

    engine = await _engine(tmp_path, workflows={"shout": Workflow.model_validate(registered)})
    async with engine:
        wf = {
            "name": "names",
            "steps": [
                {"id": "a", "kind": "workflow", "workflow": "greet"},
                {"id": "b", "kind": "workflow", "workflow": "shout"},
            ],
        }
        state = await engine.run(wf)
        assert state.status == "succeeded", state.completed_error
        assert state.steps["a"].output == {"hi": "hi"}
        assert state.steps["b"].output == {"hi": "HI"}


async def test_bad_targets_are_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    _child(tmp_path)
    _write(
        tmp_path,
        "loop_a.yaml",
        {"name": "a", "steps": [{"id": "b", "kind": "workflow", "workflow": "loop_b.yaml"}]},
    )
    _write(
        tmp_path,
        "loop_b.yaml",
        {"name": "b", "steps": [{"id": "a", "kind": "workflow", "workflow": "loop_a.yaml"}]},
    )
    async with await _engine(tmp_path) as engine:
        with pytest.raises(SpecError, match=r"loop_a.yaml -> loop_b.yaml -> loop_a.yaml"):
            await engine.submit(tmp_path / "loop_a.yaml")
        with pytest.raises(SpecError, match=r"steps\[0\].workflow: .*missing.yaml"):
            await engine.submit(_parent(workflow="missing.yaml"))
        with pytest.raises(SpecError, match=r"steps\[0\].inputs.whom: .*declares no input"):
            await engine.submit(_parent(inputs={"who": "x", "whom": "y"}))
        with pytest.raises(SpecError, match=r"steps\[0\].inputs: .*needs input who"):
            await engine.submit(_parent(inputs={}))
        assert await engine.list_runs() == []


async def test_cancelling_the_parent_cancels_the_child_and_kills_its_process(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "sleep.pid"
    _child(
        tmp_path,
        [
            {
                "id": "nap",
                "kind": "shell",
                "shell": "sh",
                "run": f"echo $$ > {pid_file}; exec sleep 30",
                "sandbox": False,  # writes its host pid outside the workspace
            }
        ],
        inputs={},
    )
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(_parent(inputs={}))
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        await engine.cancel(run_id, reason="enough")
        state = await engine.wait(run_id)
        assert state.status == "cancelled"
        assert state.steps["sub"].status is StepStatus.CANCELLED
        child = await engine.state(child_run_id(run_id, "sub", 0))
        assert child.status == "cancelled"
        assert child.steps["nap"].status is StepStatus.CANCELLED
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


async def test_a_child_cancelled_on_its_own_fails_the_step(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    _child(
        tmp_path,
        [
            {
                "id": "nap",
                "kind": "shell",
                "shell": "sh",
                "run": f"echo $$ > {pid_file}; exec sleep 30",
                "sandbox": False,  # writes its host pid outside the workspace
            }
        ],
        inputs={},
    )
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(_parent(inputs={}))
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        await engine.cancel(child_run_id(run_id, "sub", 0))
        state = await engine.wait(run_id)
        assert state.status == "failed"
        sub = state.steps["sub"]
        assert sub.status is StepStatus.FAILED
        assert sub.error_type == "cancelled"


async def test_a_budget_shared_by_parent_and_child_stops_both(tmp_path: Path) -> None:
    steps = [
        {"id": f"s{i}", "kind": "shell", "run": f"echo {i}", "needs": [f"s{i - 1}"] if i else []}
        for i in range(6)
    ]
    _child(tmp_path, steps, inputs={})
    wf = _parent(inputs={})
    wf["budget"] = {"steps": 4}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        child = await engine.state(child_run_id(run_id, "sub", 0))
        assert child.status == "failed"
        assert child.budget_error is not None
        assert child.workflow.budget is not None
        assert child.workflow.budget.steps == 3
        assert child.steps_started == 3
        assert state.status == "failed"
        assert state.budget_error is not None
        assert "budget steps exceeded" in state.budget_error
        kinds = [e.event.kind for e in await engine.store.read(run_id)]
        assert "budget.exceeded" in kinds
        assert state.steps["sub"].error_type == "budget"
        assert state.steps["after"].status is StepStatus.CANCELLED


async def test_depth_binds_before_a_child_is_created(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "leaf.yaml",
        {"name": "leaf", "steps": [{"id": "x", "kind": "shell", "run": "echo leaf"}]},
    )
    _write(
        tmp_path,
        "middle.yaml",
        {"name": "middle", "steps": [{"id": "leaf", "kind": "workflow", "workflow": "leaf.yaml"}]},
    )
    wf = {
        "name": "top",
        "budget": {"depth": 1},
        "steps": [{"id": "mid", "kind": "workflow", "workflow": "middle.yaml"}],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        assert state.status == "failed"
        middle = await engine.state(child_run_id(run_id, "mid", 0))
        leaf = middle.steps["leaf"]
        assert leaf.status is StepStatus.FAILED
        assert leaf.error_type == "budget"
        assert "budget depth exceeded" in (leaf.error or "")
        assert "of 1" in (leaf.error or "")
        assert middle.children == {}  # nothing was created
        assert [r.run_id for r in await engine.list_runs()].count(
            child_run_id(middle.run_id, "leaf", 0)
        ) == 0


async def test_a_child_waiting_for_a_person_parks_the_parent(tmp_path: Path) -> None:
    _child(
        tmp_path,
        [{"id": "ok", "kind": "shell", "run": "echo ok", "approval": "required"}],
        inputs={},
    )
    wf = _parent(inputs={})
    wf["steps"][1]["env"] = {"OUT": "${{ steps.sub.output.ok }}"}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        assert state.status == "waiting"
        assert not state.awaits_person
        [(step_id, child)] = await engine.children.awaits_person(state)
        assert step_id == "sub"
        assert child.run_id == child_run_id(run_id, "sub", 0)
        [waiting] = await engine.approvals()
        assert (waiting.run_id, waiting.step_id) == (child.run_id, "ok")
        [through_parent] = await engine.approvals(run_id)  # a parent lists its children's
        assert (through_parent.run_id, through_parent.step_id) == (child.run_id, "ok")
    async with await _engine(tmp_path) as engine:  # another process decides
        await engine.approve(child.run_id, "ok")
        await engine.wait(child.run_id)
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert state.steps["sub"].output == {"ok": "ok"}
        kinds = [e.event.kind for e in await engine.store.read(run_id)]
        assert kinds.count("child.completed") == 1
        assert kinds.count("step.succeeded") == 2


AGENT = """---
name: Writer
description: Writes.
model: scripted:{script}
---
Answer briefly.
"""


async def test_a_token_budget_is_shared_by_parent_and_child(tmp_path: Path) -> None:
    """The parent spends 18 of 30 tokens; the child starts with the 12 left, its first model
    call (18) stops it, and its spending stops the parent too, naming the tree's figure."""
    (tmp_path / "agents").mkdir()
    script = tmp_path / "script.yaml"
    reply = "    - content: done\n      usage: {input_tokens: 12, output_tokens: 6}\n"
    script.write_text("agents:\n  writer:\n" + reply * 3)
    (tmp_path / "agents" / "writer.md").write_text(AGENT.format(script=script))
    ask = {"kind": "agent", "agent": "writer", "prompt": "Write."}
    _child(tmp_path, [{"id": "one", **ask}, {"id": "two", **ask, "needs": ["one"]}], inputs={})
    wf = {
        "name": "tokens",
        "budget": {"tokens": 30},
        "steps": [
            {"id": "first", **ask},
            {"id": "sub", "kind": "workflow", "workflow": "child.yaml", "needs": ["first"]},
        ],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        child = await engine.state(child_run_id(run_id, "sub", 0))
        assert child.workflow.budget is not None
        assert child.workflow.budget.tokens == 12
        assert child.status == "failed"
        assert child.tokens == 18
        assert child.steps["two"].status is not StepStatus.SUCCEEDED
        assert state.status == "failed"
        assert state.tokens == 36
        assert (
            state.budget_error
            == f"budget tokens exceeded: 36 of 30 (with child run {child.run_id})"
        )


def test_a_plan_that_would_go_deeper_than_the_budget_fails_before_planning() -> None:
    """In a child run at depth 1 under `budget.depth: 1`, a plan's children would be at depth
    2: the plan step fails at its start, naming the limit, and nothing is launched."""
    from datetime import UTC, datetime

    from podium.core import events as ev
    from podium.core.fold import new_state
    from podium.core.turn import take_turn

    now = datetime(2026, 1, 1, tzinfo=UTC)
    doc = {
        "name": "deep",
        "budget": {"depth": 1},
        "steps": [{"id": "plan", "kind": "plan", "goal": "more"}],
    }
    created = ev.RunCreated(
        at=now,
        run_id="r.s.0",
        workflow=doc,
        workspace="/tmp",
        parent={"run_id": "r", "step_id": "s"},
        depth=1,
    )
    state = new_state(created)
    turn = take_turn(state, [], now)
    assert turn.launch == []
    failed = [e for e in turn.events if isinstance(e, ev.StepFailed)]
    assert [f.error_type for f in failed] == ["budget"]
    assert "would be at depth 2 of 1" in failed[0].error
    assert state.status == "failed"


async def test_retrying_the_step_starts_a_new_child_of_the_next_generation(
    tmp_path: Path,
) -> None:
    flaky = "if [ -f fixed ]; then echo fine; else exit 1; fi"
    _child(tmp_path, [{"id": "try", "kind": "shell", "shell": "sh", "run": flaky}], inputs={})
    wf = _parent(inputs={})
    wf["steps"][1]["env"] = {"OUT": "${{ steps.sub.output.try }}"}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        assert (await engine.wait(run_id)).status == "failed"
        (tmp_path / "fixed").touch()
        await engine.retry(run_id, "sub")
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        links = [(link.run_id, link.status) for link in state.children["sub"]]
        assert links == [
            (child_run_id(run_id, "sub", 0), "failed"),
            (child_run_id(run_id, "sub", 1), "succeeded"),
        ]
        assert state.steps["after"].output == "fine"


async def test_a_workflow_step_that_loses_an_any_race_stops_its_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    nap = f"echo $$ > {pid_file}; exec sleep 30"
    host_pid = {"sandbox": False}  # `$$` is then a host pid: the test checks it is gone
    nap_step = {"id": "nap", "kind": "shell", "shell": "sh", "run": nap, **host_pid}
    _child(tmp_path, [nap_step], inputs={})
    wf = {
        "name": "race",
        "steps": [
            {"id": "sub", "kind": "workflow", "workflow": "child.yaml"},
            {
                "id": "fast",
                "kind": "shell",
                "shell": "sh",
                "run": f"while [ ! -s {pid_file} ]; do sleep 0.02; done; echo won",
            },
            {
                "id": "done",
                "kind": "shell",
                "run": "echo done",
                "needs": ["sub", "fast"],
                "join": "any",
            },
        ],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert state.steps["sub"].status is StepStatus.CANCELLED
        child_id = child_run_id(run_id, "sub", 0)
        for _ in range(100):
            if (await engine.store.get_run(child_id)).status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert (await engine.state(child_id)).status == "cancelled"
        assert not _alive(int(pid_file.read_text()))


async def test_resuming_a_finished_child_tells_a_parent_that_never_heard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.runtime.children import ChildRuns

    _child(
        tmp_path,
        [{"id": "ok", "kind": "shell", "run": "echo ok", "approval": "required"}],
        inputs={},
    )
    wf = _parent(inputs={})
    wf["steps"][1]["env"] = {"OUT": "${{ steps.sub.output.ok }}"}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
    child_id = child_run_id(run_id, "sub", 0)
    async with await _engine(tmp_path) as engine:  # its driver dies before it tells the parent

        async def lost(self: ChildRuns, child: Any) -> None:
            return None

        with monkeypatch.context() as patched:
            patched.setattr(ChildRuns, "_tell_parent", lost)
            await engine.approve(child_id, "ok")
            assert (await engine.wait(child_id)).status == "succeeded"
        assert (await engine.state(run_id)).status == "waiting"
    async with await _engine(tmp_path) as engine:
        await engine.resume(child_id)
        assert engine.is_driving(run_id)  # told and woken by the child's resume itself
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert state.steps["after"].output == "ok"


async def test_a_child_recorded_but_never_created_is_created_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver dies between committing `child.started` and creating the child run: the
    parent's next driver creates it under the recorded id, once."""
    from podium.runtime.children import ChildRuns

    _child(tmp_path)
    async with await _engine(tmp_path) as engine:

        async def died(self: ChildRuns, parent: Any, link: Any) -> list[Any]:
            return []

        with monkeypatch.context() as patched:
            patched.setattr(ChildRuns, "_create", died)
            run_id = await engine.submit(_parent())
            for _ in range(100):  # not `wait`: it would resume the parent, which creates again
                if not engine.is_driving(run_id):
                    break
                await asyncio.sleep(0.02)
        assert (await engine.store.get_run(run_id)).status == "waiting"
        assert [r.run_id for r in await engine.list_runs()] == [run_id]
    async with await _engine(tmp_path) as engine:
        await engine.resume(run_id)
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert sorted(r.run_id for r in await engine.list_runs()) == [
            run_id,
            child_run_id(run_id, "sub", 0),
        ]
        assert (tmp_path / "child.ran").read_text() == "ran\n"
