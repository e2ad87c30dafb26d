"""Every bad request gets the right 4xx and a JSON error saying what to fix; none is a 500 and
none leaves anything half-created."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import GATED, QUICK, Served, serving


def _error(reply: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = reply.json()["error"]
    assert error["message"], error
    if kind is not None:
        assert error["type"] == kind, error
    return error


async def _no_runs(served: Served) -> None:
    assert (await served.client.get("/runs")).json() == []


async def test_malformed_json_is_a_400(served: Served) -> None:
    headers = {"content-type": "application/json"}
    reply = await served.client.post("/runs", content=b'{"path": ', headers=headers)
    assert "not valid JSON" in _error(reply, 400, "malformed_json")["message"]
    untyped = await served.client.post("/runs", content=b"{bad")
    _error(untyped, 400, "malformed_json")
    await _no_runs(served)


async def test_a_body_of_the_wrong_shape_is_a_422_naming_the_field(served: Served) -> None:
    reply = await served.client.post("/runs", json={"path": "x.yaml", "inptus": {}})
    error = _error(reply, 422, "invalid")
    assert [p["path"] for p in error["problems"]] == ["body.inptus"]
    listed = await served.client.get("/runs", params={"limit": 0})
    assert "limit" in _error(listed, 422)["message"]
    wrong_status = await served.client.get("/runs", params={"status": "done"})
    _error(wrong_status, 422)


async def test_an_invalid_workflow_or_input_is_a_422_and_records_nothing(served: Served) -> None:
    bad = {"workflow": {"name": "x", "steps": [{"id": "a", "kind": "nope"}]}}
    error = _error(await served.client.post("/runs", json=bad), 422, "SpecError")
    assert error["problems"][0]["path"] == "steps[0].kind"
    (served.folder / "quick.yaml").write_text(QUICK)
    typed = {"path": "quick.yaml", "inputs": {"who": 3}}
    _error(await served.client.post("/runs", json=typed), 422, "InputError")
    unknown = {"path": "quick.yaml", "inputs": {"whom": "x"}}
    _error(await served.client.post("/runs", json=unknown), 422)
    neither = await served.client.post("/runs", json={})
    assert "`workflow`" in _error(neither, 400, "UsageError")["message"]
    missing = await served.client.post("/runs", json={"path": "nowhere.yaml"})
    _error(missing, 400, "UsageError")
    for outside in ("../elsewhere.yaml", "/etc/passwd"):
        escaped = await served.client.post("/workflows/validate", json={"path": outside})
        assert "outside the server's workspace" in _error(escaped, 400)["message"]
        submitted = await served.client.post("/runs", json={"path": outside})
        assert "outside the server's workspace" in _error(submitted, 400)["message"]
    for elsewhere in ("/", "..", "/tmp"):  # a run may write all of its workspace
        chosen = {"path": "quick.yaml", "workspace": elsewhere}
        refused = await served.client.post("/runs", json=chosen)
        assert "outside the server's workspace" in _error(refused, 400)["message"]
    await _no_runs(served)
    (served.folder / "inner").mkdir()
    inner = {"path": "quick.yaml", "workspace": "inner", "run_id": "inside-1"}
    assert (await served.client.post("/runs", json=inner)).status_code == 201
    state = await served.engine.state("inside-1")
    assert state.workspace_path == (served.folder / "inner").resolve()


async def test_a_taken_run_id_is_a_409(served: Served) -> None:
    (served.folder / "quick.yaml").write_text(QUICK)
    body = {"path": "quick.yaml", "run_id": "nightly-1"}
    assert (await served.client.post("/runs", json=body)).status_code == 201
    _error(await served.client.post("/runs", json=body), 409, "RunExistsError")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/runs/run_nope", None),
        ("GET", "/runs/run_nope/steps/a", None),
        ("GET", "/runs/run_nope/logs", None),
        ("GET", "/runs/run_nope/approvals", None),
        ("GET", "/runs/run_nope/plans", None),
        ("GET", "/runs/run_nope/events", None),
        ("POST", "/runs/run_nope/cancel", {}),
        ("POST", "/runs/run_nope/retry", {"step_id": "a"}),
        ("POST", "/runs/run_nope/skip", {"step_id": "a"}),
        ("POST", "/runs/run_nope/fork", {"from_step": "a"}),
        ("POST", "/runs/run_nope/approve", {}),
        ("POST", "/runs/run_nope/steps/a/approve", {}),
        ("POST", "/runs/run_nope/steps/a/reject", {}),
        ("POST", "/runs/run_nope/steps/a/answer", {"value": 1}),
        ("POST", "/runs/run_nope/steps/a/feedback", {"rating": "up"}),
    ],
)
async def test_an_unknown_run_is_a_404(
    served: Served, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = await served.client.request(method, path, json=body)
    assert _error(reply, 404, "RunNotFoundError")["run_id"] == "run_nope"


async def test_unknown_steps_routes_and_cursors(served: Served) -> None:
    run_id = await served.submit(GATED)
    await served.until(run_id, lambda d: len(d["approvals"]) == 2)
    for reply in (
        await served.client.get(f"/runs/{run_id}/steps/nope"),
        await served.client.get(f"/runs/{run_id}/logs", params={"step": "nope"}),
        await served.client.post(f"/runs/{run_id}/steps/nope/approve", json={}),
    ):
        assert "its steps are" in _error(reply, 404, "StepNotFoundError")["message"]
    which = await served.client.post(f"/runs/{run_id}/approve", json={})
    assert "name the step" in _error(which, 409)["message"]  # two wait: which one?
    route = await served.client.get("/nowhere")
    assert "/docs" in _error(route, 404, "not_found")["message"]
    verb = await served.client.delete(f"/runs/{run_id}")
    _error(verb, 405, "method_not_allowed")
    cursor = await served.client.get("/runs", params={"cursor": "run_gone"})
    _error(cursor, 400, "bad_cursor")
    resume = await served.client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "soon"})
    _error(resume, 400, "bad_last_event_id")


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path, max_body_bytes=2048) as here:
        yield here


async def test_an_oversized_body_is_a_413_before_it_is_read(small: Served) -> None:
    steps = [{"id": f"s{i}", "kind": "python", "call": "helper:greet"} for i in range(100)]
    big = {"workflow": {"name": "big", "steps": steps}}
    reply = await small.client.post("/runs", json=big)
    assert "2,048 bytes" in _error(reply, 413, "payload_too_large")["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"workflow": {"name": "big", "steps": ['
        for _ in range(100):
            yield b'{"id": "s", "kind": "python", "call": "helper:greet"},'

    streamed = await small.client.post(
        "/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    _error(streamed, 413, "payload_too_large")
    assert (await small.client.get("/runs")).json() == []


async def test_cors_is_off_unless_an_origin_is_allowed(served: Served, tmp_path: Path) -> None:
    asked = {"Origin": "https://ops.example.com", "Access-Control-Request-Method": "POST"}
    closed = await served.client.options("/runs", headers=asked)
    assert "access-control-allow-origin" not in closed.headers
    plain = await served.client.get("/runs", headers={"Origin": "https://ops.example.com"})
    assert "access-control-allow-origin" not in plain.headers
    (tmp_path / "open").mkdir()
    async with serving(tmp_path / "open", cors_origins=["https://ops.example.com"]) as opened:
        allowed = await opened.client.options("/runs", headers=asked)
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
        other = await opened.client.options(
            "/runs", headers={**asked, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        listed = await opened.client.get("/runs", headers={"Origin": "https://ops.example.com"})
        assert "X-Next-Cursor" in listed.headers["access-control-expose-headers"]


async def test_a_run_is_submitted_on_a_queue_and_a_bad_queue_name_is_a_422(served: Served) -> None:
    (served.folder / "quick.yaml").write_text(QUICK)
    bad = await served.client.post("/runs", json={"path": "quick.yaml", "queue": "no spaces"})
    assert [p["path"] for p in _error(bad, 422, "invalid")["problems"]] == ["body.queue"]
    await _no_runs(served)

    reply = await served.client.post(
        "/runs", json={"path": "quick.yaml", "inputs": {"who": "x"}, "queue": "gpu"}
    )

    assert reply.status_code == 201, reply.text
    assert reply.json()["queue"] == "gpu"
