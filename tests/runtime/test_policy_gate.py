"""The approval policy through the engine and a real SQLite store: a planner's shell, file write and
non-GET http steps are held for a person by default (reason `policy: planned_*`) and run once
approved; a project that turns a rule off runs them at once; a rejected planned shell step never
runs; `shell: true` holds written shell steps too; blocked agents are refused at submit and in a
plan (the planner is asked again); skipping a held step withdraws its approval; `approvals`
across runs reads only the waiting runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from podium.config import ProjectConfig
from podium.core.fold import replay
from podium.core.state import StepStatus
from podium.errors import SpecError
from podium.runtime import approvals
from podium.runtime.engine import Engine
from podium.spec.model import ShellStep
from podium.spec.policy import Policy
from podium.store.base import EventStore

from .test_breakers import (
    FAST,
    Flaky,
    ask,
    breaker_events,
    flaky,
    http_error,
    open_engine,
    workspace,
)
from .test_plan_step import PLAN, Team, flow, plan_step, team

__all__ = ["flaky", "team", "workspace"]  # the fixtures, used by name


class _Posts(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        _Posts.seen.append(self.rfile.read(length).decode())
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def posts() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Posts)
    _Posts.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Posts.seen
    server.shutdown()
    server.server_close()


def _config(tmp_path: Path, **policy: Any) -> ProjectConfig:
    return ProjectConfig(root=tmp_path, policy=Policy.model_validate(policy))


async def _engine(tmp_path: Path, config: ProjectConfig | None = None) -> Engine:
    return await Engine.open(tmp_path / "p.db", workspace=tmp_path, config=config)


def _planned(url: str) -> dict[str, Any]:
    return {
        "summary": "touch, write, post",
        "steps": [
            {"id": "touch", "kind": "shell", "run": "touch shell.ran"},
            {"id": "save", "kind": "file", "op": "write", "path": "saved.txt", "content": "hi"},
            {"id": "hook", "kind": "http", "method": "POST", "url": url, "body": "payload"},
            {"id": "look", "kind": "file", "op": "read", "path": "saved.txt", "needs": ["save"]},
        ],
    }


KINDS = plan_step(kinds=["agent", "shell", "http", "file"])
LOOPBACK = {"allow": ["127.0.0.1"]}  # the hook listens on 127.0.0.1, which the SSRF guard refuses


async def test_planned_writes_park_for_approval_then_run(
    tmp_path: Path, team: Team, posts: tuple[str, list[str]]
) -> None:
    url, seen = posts
    team.plans.append(_planned(url))
    async with await _engine(tmp_path, _config(tmp_path, network=LOOPBACK)) as engine:
        run_id = await engine.submit(flow(KINDS))
        state = await engine.wait(run_id)
        assert state.status == "waiting"
        asked = {w.step_id: w.reason for w in await engine.approvals(run_id)}
        assert asked == {
            "plan.touch": "policy: planned_shell",
            "plan.save": "policy: planned_file_writes",
            "plan.hook": "policy: planned_http_writes",
        }
        assert not (tmp_path / "shell.ran").exists()
        assert not (tmp_path / "saved.txt").exists()
        assert seen == []
        for step_id in asked:
            await engine.approve(run_id, step_id)
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert (tmp_path / "shell.ran").exists()
        assert state.steps["plan.look"].output == "hi"
        assert seen == ["payload"]
        kinds = [e.event.kind for e in await engine.store.read(run_id)]
        assert kinds.count("approval.requested") == 3  # the read was never asked about


async def test_a_project_that_turns_the_rules_off_runs_them_at_once(
    tmp_path: Path, team: Team, posts: tuple[str, list[str]]
) -> None:
    url, seen = posts
    team.plans.append(_planned(url))
    rules = {"planned_shell": False, "planned_file_writes": False, "planned_http_writes": False}
    config = _config(tmp_path, approve=rules, network=LOOPBACK)
    async with await _engine(tmp_path, config) as engine:
        state = await engine.run(flow(KINDS))
        assert state.status == "succeeded", state.completed_error
        assert (tmp_path / "shell.ran").exists()
        assert seen == ["payload"]
        kinds = [e.event.kind for e in await engine.store.read(state.run_id)]
        assert "approval.requested" not in kinds


async def test_a_rejected_planned_shell_step_never_runs(tmp_path: Path, team: Team) -> None:
    team.plans.append(
        {"steps": [{"id": "rm", "kind": "shell", "run": "touch marker ${{ inputs.x }}"}]}
    )
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(flow(KINDS))
        await engine.wait(run_id)
        [held] = await engine.approvals(run_id)
        assert held.input["run"] == "touch marker ${{ inputs.x }}"  # the planner's text is data
        await engine.reject(run_id, "plan.rm", reason="no shell today")
        state = await engine.wait(run_id)
        assert state.steps["plan.rm"].status is StepStatus.FAILED
        assert not (tmp_path / "marker").exists()


async def test_the_shell_rule_holds_written_shell_steps(tmp_path: Path) -> None:
    wf = {
        "name": "strict",
        "policy": {"approve": {"shell": True}},
        "steps": [{"id": "hi", "kind": "shell", "run": "touch hi.ran"}],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        assert state.approvals["hi"].reason == "policy: shell"
        assert not (tmp_path / "hi.ran").exists()
        await engine.approve(run_id, "hi")
        assert (await engine.wait(run_id)).status == "succeeded"
        assert (tmp_path / "hi.ran").exists()
        await engine.submit({**wf, "policy": None})  # without the rule: not held
        plain = (await engine.list_runs())[0].run_id
        assert (await engine.wait(plain)).status == "succeeded"


async def test_a_workflow_cannot_loosen_the_projects_policy(tmp_path: Path) -> None:
    wf = {
        "name": "loose",
        "policy": {"approve": {"planned_shell": False}},
        "steps": [{"id": "hi", "kind": "shell", "run": "true"}],
    }
    async with await _engine(tmp_path) as engine:
        with pytest.raises(SpecError, match=r"policy\.approve\.planned_shell.*\[policy\.approve\]"):
            await engine.submit(wf)
        assert await engine.list_runs() == []
    config = _config(tmp_path, approve={"planned_shell": False})
    async with await _engine(tmp_path, config) as engine:
        assert (await engine.run(wf)).status == "succeeded"  # the project turned it off


async def test_a_blocked_agent_is_refused_at_submit_and_in_a_plan(
    tmp_path: Path, team: Team
) -> None:
    config = _config(tmp_path, block_agents=["Researcher"])
    ask = {"id": "ask", "kind": "agent", "agent": "researcher", "prompt": "facts"}
    async with await _engine(tmp_path, config) as engine:
        with pytest.raises(SpecError, match=r"steps\[0\]\.agent: agent .researcher. is blocked"):
            await engine.submit(flow(ask))
        only_writer = {"steps": [{"id": "note", "agent": "writer", "task": "write note"}]}
        team.plans += [PLAN, only_writer]
        state = await engine.run(flow(plan_step()))
        assert state.status == "succeeded", state.completed_error
        assert len(team.planner_prompts) == 2  # asked again with the problem
        assert "- researcher:" not in team.planner_prompts[0]
        assert "steps[0].agent: agent 'researcher' is blocked" in team.planner_prompts[1]
        assert set(state.steps) == {"plan", "plan.note"}
        assert state.policy.blocks("RESEARCHER")


async def test_skipping_a_step_that_waits_for_approval_withdraws_it(tmp_path: Path) -> None:
    wf = {
        "name": "skippy",
        "steps": [
            {"id": "held", "kind": "shell", "run": "touch held.ran", "approval": "required"},
            {"id": "after", "kind": "shell", "run": "touch after.ran", "needs": ["held"]},
            {"id": "anyway", "kind": "shell", "run": "true", "needs": ["held"]},
        ],
    }
    wf["steps"][2]["allow_skipped"] = True
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
        await engine.skip(run_id, "held")
        state = await engine.wait(run_id)
        assert state.steps["held"].status is StepStatus.SKIPPED
        assert state.approvals == {}
        assert not (tmp_path / "held.ran").exists()
        kinds = [e.event for e in await engine.store.read(run_id)]
        withdrawn = [e for e in kinds if e.kind == "approval.withdrawn"]
        assert [getattr(e, "reason", None) for e in withdrawn] == ["skipped"]
        assert state.steps["anyway"].status is StepStatus.SUCCEEDED
        assert await engine.approvals() == []


class _Spy:
    """Records which statuses `list_runs` was asked for."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.listed: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def list_runs(self, **kwargs: Any) -> Any:
        self.listed.append(kwargs.get("statuses"))
        return await self.store.list_runs(**kwargs)


async def test_approvals_across_runs_reads_only_the_live_runs(tmp_path: Path) -> None:
    held = {"name": "held", "steps": [{"id": "h", "kind": "shell", "run": "true"}]}
    held["steps"][0]["approval"] = "required"
    done = {"name": "done", "steps": [{"id": "d", "kind": "shell", "run": "true"}]}
    async with await _engine(tmp_path) as engine:
        for _ in range(5):
            await engine.run(done)
        waiting_id = await engine.submit(held)
        await engine.wait(waiting_id)
        spy = _Spy(engine.store)
        read: list[str] = []
        original = engine.state

        async def counted(run_id: str) -> Any:
            read.append(run_id)
            return await original(run_id)

        engine.store = spy  # type: ignore[assignment]
        engine.state = counted  # type: ignore[method-assign]
        try:
            found = await engine.approvals()
        finally:
            engine.store = spy.store
            del engine.state
        assert [(w.run_id, w.step_id) for w in found] == [(waiting_id, "h")]
        assert spy.listed == [["waiting", "running"]]
        assert read == [waiting_id]  # the five finished runs were never replayed


async def test_approvals_across_runs_lists_a_step_held_while_another_branch_runs(
    tmp_path: Path,
) -> None:
    doc = {
        "name": "busy",
        "steps": [
            {"id": "h", "kind": "shell", "run": "true", "approval": "required"},
            {"id": "nap", "kind": "shell", "run": "sleep 30"},
        ],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(doc)
        for _ in range(200):  # until the request is committed beside the running branch
            state = await engine.state(run_id)
            if "h" in state.approvals:
                break
            await asyncio.sleep(0.02)
        assert state.status == "running"
        found = await engine.approvals()
        assert [(w.run_id, w.step_id) for w in found] == [(run_id, "h")]
        await engine.cancel(run_id)
        await engine.wait(run_id)


async def test_planned_shell_children_replay_and_fork_as_shell_steps(
    tmp_path: Path, team: Team
) -> None:
    team.plans.append({"steps": [{"id": "mark", "kind": "shell", "run": "sh -c 'echo x >> m'"}]})
    after = {"id": "after", "kind": "shell", "run": "true", "needs": ["plan"]}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(flow(KINDS, after))
        await engine.wait(run_id)
        await engine.approve(run_id, "plan.mark")
        parent = await engine.wait(run_id)
        assert parent.status == "succeeded", parent.completed_error
        replayed = replay(e.event for e in await engine.store.read(run_id))
        assert isinstance(replayed.steps["plan.mark"].spec, ShellStep)
        assert replayed.steps["plan.mark"].approved
        fork = await engine.wait(await engine.fork(run_id, "after"))
        assert fork.status == "succeeded", fork.completed_error
        assert isinstance(fork.steps["plan.mark"].spec, ShellStep)
        assert fork.approvals == {}  # taken over as it finished, not asked again
        assert (tmp_path / "m").read_text() == "x\n"  # ran once, in the parent only


async def test_a_planned_workflow_step_waits_then_runs_its_child(
    tmp_path: Path, team: Team
) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: child\nsteps:\n  - {id: c, kind: shell, run: 'touch child.ran'}\n"
    )
    team.plans.append({"steps": [{"id": "sub", "kind": "workflow", "workflow": "child.yaml"}]})
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(flow(plan_step(kinds=["agent", "workflow"])))
        state = await engine.wait(run_id)
        assert state.approvals["plan.sub"].reason == "policy: planned_workflows"
        assert not (tmp_path / "child.ran").exists()
        await engine.approve(run_id, "plan.sub")
        state = await engine.wait(run_id)
        assert state.status == "succeeded", state.completed_error
        assert (tmp_path / "child.ran").exists()


async def test_a_blocked_agent_is_never_chosen_as_a_fallback(workspace: Path, flaky: Flaky) -> None:
    flaky.failures += [http_error(503), http_error(503)]  # opens primary's breakers
    doc = {
        "name": "w",
        "policy": {"block_agents": ["BACKUP"]},
        "steps": [
            ask("a", retry={"max_attempts": 2, "initial_delay_seconds": 0}, allow_failure=True),
            ask("b", needs=["a"], allow_failure=True),
        ],
    }
    async with await open_engine(workspace, **FAST) as engine:
        state = await engine.run(doc)
        events = await breaker_events(engine, state.run_id)
    assert state.steps["b"].status is StepStatus.FAILED
    assert state.steps["b"].error_type == "breaker_open"
    assert not [e for e in events if e.kind == "agent.routed"]  # backup was never asked


async def test_approvals_across_runs_says_when_more_runs_wait_than_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(approvals, "LISTED_RUNS", 1)
    held = {"name": "held", "steps": [{"id": "h", "kind": "shell", "run": "true"}]}
    held["steps"][0]["approval"] = "required"
    async with await _engine(tmp_path) as engine:
        first = await engine.submit(held, run_id="r1")
        await engine.wait(first)
        second = await engine.submit(held, run_id="r2")
        await engine.wait(second)
        listed = await approvals.waiting_runs(engine)
    assert listed.more
    assert [w.run_id for w in listed.found] == ["r2"]  # the newest
