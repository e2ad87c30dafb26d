"""The REST API against a real server: the same documents as the CLI's `--json`, and the same
semantics (submit, list with paging, show, steer, decide, fork, prune, logs, feedback)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.runtime._threads import Model, model, project

from podium.runtime.engine import Engine

from .conftest import ASKING, FLAKY, GATED, QUICK, Served, serving

__all__ = ["model"]  # the threads' function-model fixture


def _finished(document: dict[str, Any]) -> bool:
    return document["status"] in ("succeeded", "failed", "cancelled")


def _waiting(document: dict[str, Any]) -> bool:
    return document["status"] == "waiting" and bool(document["approvals"])


async def test_show_and_list_are_the_cli_documents(served: Served) -> None:
    first = await served.submit(QUICK, who="ann")
    second = await served.submit(QUICK)
    for run_id in (first, second):
        await served.until(run_id, _finished)
    shown = (await served.client.get(f"/runs/{first}")).json()
    assert shown["status"] == "succeeded"
    assert shown == served.cli_json("show", first, "--json")
    listed = (await served.client.get("/runs")).json()
    assert [r["run_id"] for r in listed] == [second, first]
    assert listed == served.cli_json("runs", "--json")
    step = (await served.client.get(f"/runs/{first}/steps/hello")).json()
    assert step == served.cli_json("show", first, "hello", "--json")
    assert step["output"] == "hi"


async def test_runs_page_with_a_cursor_and_filters(served: Served) -> None:
    ids = [await served.submit(QUICK) for _ in range(5)]
    for run_id in ids:
        await served.until(run_id, _finished)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        reply = await served.client.get("/runs", params=params)
        seen += [r["run_id"] for r in reply.json()]
        cursor = reply.headers.get("X-Next-Cursor")
        if cursor is None:
            break
    assert seen == ids[::-1]
    failed = await served.client.get("/runs", params={"status": ["failed", "cancelled"]})
    assert failed.json() == []
    named = await served.client.get("/runs", params={"workflow": "quick", "limit": 1})
    assert [r["run_id"] for r in named.json()] == [ids[-1]]


async def test_validate_answers_what_the_cli_prints(served: Served) -> None:
    (served.folder / "bad.yaml").write_text("name: bad\nsteps:\n  - {id: a, kind: nope}\n")
    bad = (await served.client.post("/workflows/validate", json={"path": "bad.yaml"})).json()
    assert bad == served.cli_json("validate", "bad.yaml", "--json")
    assert bad["ok"] is False
    assert bad["problems"][0]["path"] == "steps[0].kind"
    good = await served.client.post(
        "/workflows/validate",
        json={"workflow": {"name": "w", "steps": [{"id": "a", "kind": "python", "call": "x:y"}]}},
    )
    assert good.json() | {"warnings": []} == {
        "ok": True,
        "workflow": "w",
        "steps": 1,
        "problems": [],
        "warnings": [],
    }
    assert (await served.client.get("/runs")).json() == []  # validating records nothing


async def test_approve_with_an_edit_reject_and_conflicts(served: Served) -> None:
    run_id = await served.submit(GATED)
    waiting = await served.until(run_id, lambda d: len(d["approvals"]) == 2)
    pending = (await served.client.get("/approvals")).json()
    assert pending == served.cli_json("approvals", "--json")
    assert {a["step_id"] for a in pending} == {"release", "notes"}
    assert waiting["approvals"][0]["step_id"] in ("release", "notes")
    approved = await served.client.post(
        f"/runs/{run_id}/steps/notes/approve", json={"set": ["content=edited"]}
    )
    assert approved.status_code == 202, approved.text
    again = await served.client.post(f"/runs/{run_id}/steps/notes/approve", json={})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["type"] == "InvalidTransitionError"
    both = await served.client.post(
        f"/runs/{run_id}/steps/release/approve", json={"edit": {"run": ["true"]}, "set": ["a=b"]}
    )
    assert both.status_code == 400
    assert "not both" in both.json()["error"]["message"]
    rejected = await served.client.post(
        f"/runs/{run_id}/steps/release/reject", json={"reason": "not today"}
    )
    assert rejected.status_code == 202
    done = await served.until(run_id, _finished)
    steps = {s["id"]: s for s in done["steps"]}
    assert (served.folder / "notes.txt").read_text() == "edited"
    assert steps["release"]["status"] == "failed"
    late = await served.client.post(f"/runs/{run_id}/steps/release/approve", json={})
    assert late.status_code == 409


async def test_answer_a_human_step_checked_against_its_choices(served: Served) -> None:
    run_id = await served.submit(ASKING)
    await served.until(run_id, _waiting)
    wrong = await served.client.post(f"/runs/{run_id}/steps/pick/answer", json={"value": "ops"})
    assert wrong.status_code in (400, 422), wrong.text
    assert "core" in wrong.json()["error"]["message"]
    right = await served.client.post(f"/runs/{run_id}/steps/pick/answer", json={"value": "web"})
    assert right.status_code == 202, right.text
    await served.until(run_id, _finished)
    assert (served.folder / "team.txt").read_text() == "web"


async def test_retry_all_failed_skip_cancel_and_fork(served: Served) -> None:
    run_id = await served.submit(FLAKY)
    failed = await served.until(run_id, _finished)
    assert failed["status"] == "failed"
    (served.folder / "flag").write_text("")
    retried = await served.client.post(f"/runs/{run_id}/retry", json={"all": "failed"})
    assert retried.status_code == 202, retried.text
    assert retried.json()["steps"] == ["check"]
    done = await served.until(run_id, lambda d: d["status"] == "succeeded")
    assert [s["status"] for s in done["steps"]] == ["succeeded", "succeeded"]
    forked = await served.client.post(f"/runs/{run_id}/fork", json={"from_step": "after"})
    assert forked.status_code == 201, forked.text
    child = await served.until(forked.json()["run_id"], _finished)
    assert child["forked_from"]["run_id"] == run_id
    neither = await served.client.post(f"/runs/{run_id}/skip", json={})
    assert neither.status_code == 400
    waiting = await served.submit(GATED)
    await served.until(waiting, _waiting)
    cancelled = await served.client.post(f"/runs/{waiting}/cancel", json={"reason": "enough"})
    assert cancelled.status_code == 202
    end = await served.until(waiting, _finished)
    assert (end["status"], end["cancel_reason"]) == ("cancelled", "enough")


async def test_logs_feedback_plans_and_prune(served: Served) -> None:
    run_id = await served.submit(FLAKY)
    await served.until(run_id, _finished)
    logs = (await served.client.get(f"/runs/{run_id}/logs", params={"step": "check"})).json()
    assert logs
    assert all(entry["step_id"] == "check" for entry in logs)
    assert any(entry["stream"] == "error" for entry in logs)
    rated = await served.client.post(
        f"/runs/{run_id}/steps/check/feedback", json={"rating": "down", "comment": "flaky"}
    )
    assert rated.status_code == 201, rated.text
    assert rated.json()["feedback"][0]["comment"] == "flaky"
    assert (await served.client.get(f"/runs/{run_id}")).json()["feedback"] == {
        "check": {"up": 0, "down": 1}
    }
    assert (await served.client.get(f"/runs/{run_id}/plans")).json() == {}
    no_plan = await served.client.get(f"/runs/{run_id}/plans/check")
    assert no_plan.status_code == 404
    dry = await served.client.post("/runs/prune", json={"older_than": "0s", "dry_run": True})
    assert [r["run_id"] for r in dry.json()["runs"]] == [run_id]
    assert (await served.client.get(f"/runs/{run_id}")).status_code == 200
    gone = await served.client.post("/runs/prune", json={"older_than": "0s"})
    assert [r["run_id"] for r in gone.json()["runs"]] == [run_id]
    assert (await served.client.get(f"/runs/{run_id}")).status_code == 404


async def test_threads_start_empty_and_openapi_lists_the_routes(served: Served) -> None:
    assert (await served.client.get("/threads")).json() == []
    schema = (await served.client.get("/openapi.json")).json()
    paths = set(schema["paths"])
    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/events", "/approvals"} <= paths
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = await served.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_run_detach_leaves_the_run_for_the_server_to_claim(served: Served) -> None:
    (served.folder / "quick.yaml").write_text(QUICK)
    detached = served.cli("run", "quick.yaml", "--detach", "--input", "who=bob")
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()
    assert run_id.startswith("run_")
    assert "podium serve" in detached.stderr
    done = await served.until(run_id, _finished)
    assert done["status"] == "succeeded"
    assert (served.folder / "bye.txt").read_text() == "bye bob"


async def test_a_control_only_server_leaves_runs_to_a_worker(tmp_path: Path) -> None:
    async with serving(tmp_path, mode="control") as control:
        run_id = await control.submit(QUICK)
        stream = asyncio.create_task(_events_of(control, run_id))
        await asyncio.sleep(0.3)
        assert not control.engine.is_driving(run_id)
        shown = (await control.client.get(f"/runs/{run_id}")).json()
        assert shown["status"] == "pending"  # nobody has started it
        assert shown == control.cli_json("show", run_id, "--json")
        async with await Engine.open(control.db, mode="worker", workspace=tmp_path):
            done = await control.until(run_id, _finished)  # another engine drove it
            kinds = await asyncio.wait_for(stream, 20)
    assert done["status"] == "succeeded"
    assert kinds[0] == "run.created"
    assert kinds[-1] == "run.completed"


async def _events_of(served: Served, run_id: str) -> list[str]:
    """The kinds a client of the run's stream sees until it ends."""
    kinds: list[str] = []
    async with served.client.stream("GET", f"/runs/{run_id}/events") as reply:
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                kinds.append(json.loads(line[6:])["kind"])
    return kinds


async def test_a_message_posted_to_a_thread_is_answered_by_an_agent(
    tmp_path: Path, model: Model
) -> None:
    project(tmp_path, {"assistant": "Answers anything."})
    async with serving(tmp_path) as served:
        posted = await served.client.post("/threads/messages", json={"message": "hello"})
        assert posted.status_code == 201, posted.text
        asked = posted.json()
        assert asked["agent"] == "assistant"
        assert asked["new_thread"] is True
        done = await served.until(asked["run_id"], lambda doc: doc["status"] == "succeeded")
        assert done["status"] == "succeeded"
        again = await served.client.post(
            "/threads/messages", json={"message": "and again", "thread": asked["thread"]}
        )
        assert again.status_code == 201, again.text
        assert again.json()["new_thread"] is False
        await served.until(again.json()["run_id"], lambda doc: doc["status"] == "succeeded")
        runs = (await served.client.get(f"/threads/{asked['thread']}/runs")).json()
        assert [r["run_id"] for r in runs] == [
            again.json()["run_id"],
            asked["run_id"],
        ]  # newest first
        assert [c.messages[-1].content for c in model.asked("assistant")] == ["hello", "and again"]
