"""Bearer tokens: stored hashed in an owner-only file, required off loopback (the server refuses
to start without one), and each route's scope enforced: every route × every scope, no token and
a wrong token."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from podium.runtime.engine import Engine
from podium.server.app import create_app
from podium.server.tokens import TokenBook, is_loopback

from .conftest import PODIUM, QUICK, Served, serving

API_TAGS = {"runs", "steps", "people", "workflows", "events"}
# (method, path, body, the scope it needs); the run does not exist, so passing auth is a 404
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/runs", None, "read"),
    ("GET", "/runs/run_x", None, "read"),
    ("GET", "/runs/run_x/steps/a", None, "read"),
    ("GET", "/runs/run_x/logs", None, "read"),
    ("GET", "/runs/run_x/plans", None, "read"),
    ("GET", "/runs/run_x/plans/a", None, "read"),
    ("GET", "/runs/run_x/approvals", None, "read"),
    ("GET", "/runs/run_x/events", None, "read"),
    ("GET", "/approvals", None, "read"),
    ("GET", "/events", None, "read"),
    ("GET", "/threads", None, "read"),
    ("GET", "/threads/t/runs", None, "read"),
    ("POST", "/workflows/validate", {"workflow": {"name": "w", "steps": []}}, "read"),
    ("POST", "/runs", {"path": "none.yaml"}, "write"),
    ("POST", "/runs/run_x/cancel", {}, "write"),
    ("POST", "/runs/run_x/retry", {"step_id": "a"}, "write"),
    ("POST", "/runs/run_x/skip", {"step_id": "a"}, "write"),
    ("POST", "/runs/run_x/fork", {"from_step": "a"}, "write"),
    ("POST", "/runs/prune", {"older_than": "bad"}, "write"),
    ("POST", "/runs/run_x/steps/a/feedback", {"rating": "up"}, "write"),
    ("POST", "/threads/messages", {"message": "hi", "thread": "t_none"}, "write"),
    ("POST", "/runs/run_x/approve", {}, "approve"),
    ("POST", "/runs/run_x/reject", {}, "approve"),
    ("POST", "/runs/run_x/steps/a/approve", {}, "approve"),
    ("POST", "/runs/run_x/steps/a/reject", {}, "approve"),
    ("POST", "/runs/run_x/steps/a/answer", {"value": "x"}, "approve"),
]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path, require_tokens=True) as here:
        yield here


def test_every_api_route_is_in_the_matrix(tmp_path: Path) -> None:
    """A new route of the API's modules must be added to ROUTES, with the scope it needs."""
    paths = create_app(cast(Engine, None), workspace=tmp_path).openapi()["paths"]
    found = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if set(operation.get("tags", ())) & API_TAGS
    }
    listed = {(method, _template(path)) for method, path, _, _ in ROUTES}
    assert found == listed


def _template(path: str) -> str:
    path = path.replace("run_x", "{run_id}").replace("/threads/t/", "/threads/{thread}/")
    return re.sub(r"/a(/|$)", r"/{step_id}\1", path)


async def test_scopes_matrix(guarded: Served) -> None:
    secrets = {
        scope: guarded.tokens.create([scope], name=scope)[0]
        for scope in ("read", "write", "approve")
    }
    client = guarded.client
    for method, path, body, needed in ROUTES:
        bare = await _call(client, method, path, body, {})
        assert bare.status_code == 401, (method, path, bare.text)
        assert bare.headers["www-authenticate"] == "Bearer"
        assert "podium token create" in bare.json()["error"]["message"]
        wrong = await _call(client, method, path, body, {"Authorization": "Bearer pdm_nope"})
        assert wrong.status_code == 401, (method, path)
        for scope, secret in secrets.items():
            reply = await _call(client, method, path, body, {"Authorization": f"Bearer {secret}"})
            if needed in ("read", scope):
                assert reply.status_code not in (401, 403), (method, path, scope, reply.text)
                assert reply.status_code < 500, (method, path, scope, reply.text)
            else:
                assert reply.status_code == 403, (method, path, scope, reply.text)
                assert f"--scope {needed}" in reply.json()["error"]["message"]


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    """The response; a stream's body is not read (it would not end), only its status."""
    async with client.stream(method, path, json=body, headers=headers) as reply:
        if not reply.headers.get("content-type", "").startswith("text/event-stream"):
            await reply.aread()
        return reply


async def test_a_revoked_token_stops_working_at_once(guarded: Served) -> None:
    secret, _ = guarded.tokens.create(["read"], name="ci")
    auth = {"Authorization": f"Bearer {secret}"}
    assert (await guarded.client.get("/runs", headers=auth)).status_code == 200
    TokenBook(guarded.tokens.path).revoke("ci")  # another process: the CLI
    assert (await guarded.client.get("/runs", headers=auth)).status_code == 401


async def test_loopback_without_tokens_needs_none(served: Served) -> None:
    assert (await served.client.get("/runs")).status_code == 200


def test_tokens_are_stored_hashed_in_an_owner_only_file(tmp_path: Path) -> None:
    book = TokenBook(tmp_path / ".podium" / "tokens.json")
    secret, record = book.create(["write", "read"], name="ci")
    text = book.path.read_text()
    assert secret not in text
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    assert json.loads(text)["tokens"][0]["scopes"] == ["read", "write"]
    assert book.lookup(secret) == record
    assert book.lookup(secret + "x") is None
    os.chmod(book.path, 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        TokenBook(book.path).records()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _podium(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_DB", "PODIUM_TOKENS")}
    return subprocess.run(
        [*PODIUM, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_serving_off_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    result = _podium(
        tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "p.db")
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to serve on 0.0.0.0 without tokens" in result.stderr
    assert "podium token create" in result.stderr
    assert not (tmp_path / "p.db").exists()  # refused before the store is opened


def test_token_cli_prints_the_secret_once(tmp_path: Path) -> None:
    made = _podium(tmp_path, "token", "create", "--scope", "approve", "--name", "rev")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("pdm_")
    assert "shown only now" in made.stderr
    listed = _podium(tmp_path, "token", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"]) for r in rows] == [("rev", ["approve"])]
    assert secret not in listed.stdout + (tmp_path / ".podium" / "tokens.json").read_text()
    bad = _podium(tmp_path, "token", "create", "--scope", "admin")
    assert bad.returncode == 2
    assert "not one of read, write, approve" in bad.stderr
    assert _podium(tmp_path, "token", "revoke", rows[0]["id"]).returncode == 0
    assert json.loads(_podium(tmp_path, "token", "list", "--json").stdout) == []


def test_a_served_process_with_tokens_requires_them(tmp_path: Path) -> None:
    _podium(tmp_path, "token", "create", "--scope", "read")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [*PODIUM, "serve", "--port", str(port), "--db", str(tmp_path / "p.db")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/runs", timeout=5)
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "tokens required" in out


async def test_feedback_is_recorded_as_given_by_the_token(guarded: Served) -> None:
    secret, _ = guarded.tokens.create(["write"], name="reviewer-bot")
    guarded.client.headers["Authorization"] = f"Bearer {secret}"
    run_id = await guarded.submit(QUICK)
    await guarded.until(run_id, lambda doc: doc["status"] == "succeeded")
    rated = await guarded.client.post(f"/runs/{run_id}/steps/hello/feedback", json={"rating": "up"})
    assert rated.status_code == 201, rated.text
    assert [entry["who"] for entry in rated.json()["feedback"]] == ["token:reviewer-bot"]
    printed = guarded.cli("events", run_id, "--json").stdout
    logged = [json.loads(line) for line in printed.splitlines()]
    assert [e["who"] for e in logged if e["kind"] == "step.feedback"] == ["token:reviewer-bot"]
