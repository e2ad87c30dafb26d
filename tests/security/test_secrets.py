"""Secrets are never stored or shown (SPEC F16, issue 10 item 5): 11 distinct secrets, one per
source (a `type: secret` input, a provider key, `[secrets] env`, a shell step's `secrets:`, an
sk- key a shell step prints, a ghp_ token and an `api_key=` query in an http body from a loopback
server, a JWT an agent's tool reads, a `user:pass@` URL, a PEM private key, a Bearer token in a
scripted model's answer) go through one real run (engine, SQLite file, sandboxed shell, http,
python and agent steps putting them in outputs, errors, logs, tool results and live output).
Afterwards none of them is in the raw SQLite bytes, any event, `podium show`/`events`/`logs`,
the live delta stream, the SSE stream `podium serve` sends, the step log files or the exported
spans; the markers are where the secrets would have been (so the matrix can fail). A run
SIGKILLed mid-way and resumed in another process still gets its secret input from the
environment, and still stores none of it. An MCP server's stderr log is redacted too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.tools.mcp_helpers import context, eventually, stdio_config

from podium import telemetry
from podium.config import ProjectConfig
from podium.core import events as ev
from podium.runtime.engine import Engine
from podium.server.sse import run_stream
from podium.tools.mcp import McpToolset

PODIUM = [sys.executable, "-m", "podium.cli.app"]
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _token(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def _secrets() -> dict[str, str]:
    return {
        "input": f"inp-{_token(20)}",
        "provider": f"prov-{_token(20)}",
        "config": f"cfg-{_token(20)}",
        "shell": f"shp-{_token(20)}",
        "openai": f"sk-proj-{_token(32)}",
        "github": f"ghp_{_token(36)}",
        "query": _token(24),
        "jwt": f"eyJ{_token(16)}.eyJ{_token(24)}.{_token(30)}",
        "url": _token(18),
        "pem": _token(64),
        "bearer": _token(28),
    }


class _Body(BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(_Body.body)))
        self.end_headers()
        self.wfile.write(_Body.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def listener() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    telemetry.configure(provider)
    yield memory
    telemetry.reset()
    provider.shutdown()


def _pieces(value: str) -> str:
    """A shell expression printing `value` without writing it whole in the workflow."""
    return " ".join(f"'{value[i : i + 5]}'" for i in range(0, len(value), 5))


def _workflow(s: dict[str, str], listener: str) -> dict[str, Any]:
    pem = f"-----BEGIN PRIVATE KEY-----\\n{s['pem']}\\n-----END PRIVATE KEY-----\\n"
    return {
        "name": "leaky",
        "on_failure": "collect",
        "inputs": {"tok": {"type": "secret"}},
        "steps": [
            {
                "id": "shell",
                "kind": "shell",
                "shell": "sh",
                "secrets": ["SHELL_PASS"],
                "run": (
                    "echo input ${{ inputs.tok }}; echo shell $SHELL_PASS; "
                    f"printf '%s' {_pieces(s['openai'])}; echo; "
                    f"printf '%s' {_pieces(pem)} | sed 's/\\\\n/\\n/g' >&2; "
                    "echo stderr ${{ inputs.tok }} >&2"
                ),
            },
            {"id": "fetch", "kind": "http", "url": f"http://{listener}/creds"},
            {
                "id": "keys",
                "kind": "python",
                "call": "tests.security.callables:provider_key",
                "args": {"name": "CORP_API_KEY"},
            },
            {
                "id": "deploy",
                "kind": "python",
                "call": "tests.security.callables:deploy_failure",
                "args": {"name": "DEPLOY_TOKEN"},
            },
            {
                "id": "stream",
                "kind": "python",
                "call": "tests.security.callables:stream",
                "args": {"name": "DEPLOY_TOKEN"},
                "needs": ["shell"],
            },
            {"id": "ask", "kind": "agent", "agent": "keeper", "prompt": "Read creds.txt."},
            {
                "id": "fail",
                "kind": "shell",
                "shell": "sh",
                "run": "echo failing with ${{ inputs.tok }} >&2; exit 3",
                "needs": ["shell"],
            },
        ],
    }


def _project(tmp_path: Path, s: dict[str, str]) -> Path:
    work = tmp_path / "ws"
    (work / "agents").mkdir(parents=True)
    (work / "creds.txt").write_text(f"jwt={s['jwt']}\n")
    script = tmp_path / "script.json"
    turns = [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "creds.txt"}}]},
        {"content": f"Send it with Authorization: Bearer {s['bearer']} and you are in."},
    ]
    script.write_text(json.dumps({"agents": {"keeper": turns}}))
    (work / "agents" / "keeper.md").write_text(
        f"---\nname: keeper\nmodel: scripted:{script}\ntools: [read_file]\n---\nKeep.\n"
    )
    return work


def _config(work: Path) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "root": work,
            "providers": {
                "corp": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "CORP_API_KEY"}
            },
            "secrets": {"env": ["DEPLOY_TOKEN"]},
            "policy": {"network": {"allow": ["127.0.0.1"]}},
        }
    )


def _env(monkeypatch: pytest.MonkeyPatch, s: dict[str, str]) -> None:
    monkeypatch.setenv("CORP_API_KEY", s["provider"])
    monkeypatch.setenv("DEPLOY_TOKEN", s["config"])
    monkeypatch.setenv("SHELL_PASS", s["shell"])
    monkeypatch.setenv("DB_PASSWORD", s["url"])
    monkeypatch.delenv("TOK", raising=False)


def _cli(work: Path, *args: str) -> str:
    done = subprocess.run(
        [*PODIUM, *args, "--db", str(work / "p.db")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "400"},
    )
    return done.stdout + done.stderr


async def test_eleven_secrets_are_nowhere(
    tmp_path: Path,
    listener: str,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _secrets()
    _env(monkeypatch, s)
    _Body.body = (
        f"token for you: {s['github']}\ncallback https://x.test/cb?api_key={s['query']}&next=1\n"
    ).encode()
    work = _project(tmp_path, s)
    live: list[tuple[str, str]] = []  # (step, text): two steps stream at once, interleaved
    streamed: list[str] = []
    async with await Engine.open(work / "p.db", workspace=work, config=_config(work)) as engine:
        run_id = await engine.submit(_workflow(s, listener), {"tok": s["input"]})

        async def follow() -> None:
            async for step, text in engine.deltas(run_id):
                live.append((step, text))

        async def sse() -> None:  # what `podium serve` streams: events and live deltas
            async for message in run_stream(engine, run_id, 0):
                wire = message if isinstance(message, bytes) else message.encode()
                streamed.append(wire.decode())

        followers = [asyncio.create_task(follow()), asyncio.create_task(sse())]
        state = await engine.wait(run_id)
        await asyncio.wait_for(asyncio.gather(*followers), 120)
        events = [stored.event.model_dump_json() async for stored in engine.events(run_id)]
    steps = state.steps
    # the markers stand where the secrets were: the matrix below can fail
    assert steps["shell"].output.splitlines()[:3] == [
        "input [redacted:tok]",
        "shell [redacted:SHELL_PASS]",
        "[redacted]",
    ], steps["shell"].output
    assert "token for you: [redacted]" in steps["fetch"].output
    assert "api_key=[redacted]&next=1" in steps["fetch"].output
    assert steps["keys"].output == {
        "key": "[redacted:CORP_API_KEY]",
        "dsn": "postgres://admin:[redacted]@db:5432/app",
    }
    assert "deploy refused token [redacted:DEPLOY_TOKEN]" in (steps["deploy"].error or "")
    assert "Bearer [redacted]" in steps["ask"].output
    assert "[redacted:tok]" in (steps["fail"].error or "")
    shown = "".join(text for _, text in live)
    by_step = "".join(text for step, text in live if step == "stream")
    assert by_step == "streaming [redacted:DEPLOY_TOKEN] done\n", live
    assert any("[redacted:DEPLOY_TOKEN]" in data for data in streamed)
    places = _places(work, run_id, events, shown, spans)
    places.append(("SSE stream", "\n".join(streamed)))
    found = {(name, where) for name, value in s.items() for where, text in places if value in text}
    print(f"secrets: {len(s)} tried, {len(places)} places searched, {len(found)} found")
    assert found == set()


def _places(
    work: Path, run_id: str, events: list[str], live: str, spans: InMemorySpanExporter
) -> list[tuple[str, str]]:
    db = [(f"sqlite file {p.name}", p.read_bytes().decode("latin-1")) for p in work.glob("p.db*")]
    logs = list((work / ".podium" / "logs").rglob("*.jsonl"))
    assert len(logs) >= 2  # the shell steps wrote their logs
    exported = spans.get_finished_spans()
    assert any(span.name == "step deploy" for span in exported)
    span_text = "\n".join(span.to_json() for span in exported)
    return [
        *db,
        *[(f"event {i}", text) for i, text in enumerate(events)],
        ("podium show", _cli(work, "show", run_id)),
        ("podium events", _cli(work, "events", run_id, "--json")),
        ("podium logs", _cli(work, "logs", run_id)),
        ("live deltas", live),
        *[(f"log {p.name}", p.read_text()) for p in logs],
        ("spans", span_text),
    ]


# -- resumed after SIGKILL --------------------------------------------------------------------

GATED = """\
name: gated
inputs:
  tok: {type: secret, env: GATED_TOKEN}
steps:
  - id: first
    kind: shell
    shell: sh
    run: echo first ${{ inputs.tok }}
  - id: gate
    kind: shell
    shell: sh
    sandbox: false
    idempotent: true
    run: while [ ! -f go ]; do sleep 0.05; done; printf '%s' "${{ inputs.tok }}" > used.txt
    needs: [first]
"""


def _stored(folder: Path) -> bytes:
    """The raw bytes of the store file and its SQLite companions."""
    return b"".join(p.read_bytes() for p in folder.glob("p.db*"))


def _podium(work: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PODIUM, *args, "--db", str(work / "p.db")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(db: Path, step: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(sqlite3.OperationalError),
            contextlib.closing(sqlite3.connect(db)) as conn,
        ):
            rows = conn.execute("select data from events where kind = 'step.started'").fetchall()
            if any(f'"step_id":"{step}"'.encode() in bytes(r[0]) for r in rows):
                return
        time.sleep(0.05)
    raise AssertionError(f"step {step} never started")


def test_a_resumed_run_reads_its_secret_input_from_the_environment(tmp_path: Path) -> None:
    value = f"resumed-{_token(24)}"
    work = tmp_path / "ws"
    work.mkdir()
    (work / "gated.yaml").write_text(GATED)
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_DB", "GATED_TOKEN")}
    env["COLUMNS"] = "300"
    first = _podium(work, env, "run", "gated.yaml", "--run-id", "g1", "--input", f"tok={value}")
    try:
        _wait_for_step(work / "p.db", "gate")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    (work / "go").touch()
    # without the variable the step fails, naming the input and the variable to set
    blind = _podium(work, env, "resume", "g1")
    out, _ = blind.communicate(timeout=180)
    assert "input tok is a secret: set the environment variable GATED_TOKEN" in out, out
    retried = subprocess.run(
        [*PODIUM, "retry", "g1", "gate", "--db", str(work / "p.db")],
        cwd=work,
        env={**env, "GATED_TOKEN": value},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert (work / "used.txt").read_text() == value, retried.stdout + retried.stderr
    stored = _stored(work)
    assert value.encode() not in stored
    assert b"[secret:tok:" in stored  # the placeholder is what run.created holds
    logs = b"".join(p.read_bytes() for p in (work / ".podium" / "logs").rglob("*.jsonl"))
    assert b"first [redacted:tok]" in logs
    assert value.encode() not in logs


# -- an MCP server's stderr log ----------------------------------------------------------------


async def test_an_mcp_servers_stderr_log_holds_no_secret(tmp_path: Path) -> None:
    value, key = f"mcp-{_token(20)}", f"sk-proj-{_token(32)}"
    config = stdio_config().model_copy(update={"env": {"MCP_TOKEN": value}})
    log = tmp_path / ".podium" / "logs" / "mcp-test.log"
    async with McpToolset(config) as toolset:
        shout = toolset.tools["shout"]
        assert await shout.call({"text": f"using {value} and {key}"}, context(tmp_path))
        await eventually(lambda: "using" in log.read_text(), "the line in the log")
    written = log.read_text()
    assert "using [redacted] and [redacted]" in written
    assert value not in written
    assert key not in written


# -- a fork given a new secret -----------------------------------------------------------------


async def test_a_fork_given_a_new_secret_stores_a_placeholder_and_uses_the_value(
    tmp_path: Path,
) -> None:
    first, second = f"one-{_token(20)}", f"two-{_token(20)}"
    wf = {
        "name": "forked",
        "inputs": {"tok": {"type": "secret"}},
        "steps": [
            {
                "id": "use",
                "kind": "shell",
                "shell": "sh",
                "run": "printf %s '${{ inputs.tok }}' > used",
            },
        ],
    }
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        parent = await engine.run(wf, {"tok": first})
        assert (tmp_path / "used").read_text() == first
        fork_id = await engine.fork(parent.run_id, "use", {"tok": second})
        forked = await engine.wait(fork_id)
        events = [s.event async for s in engine.events(fork_id)]
    created = events[0]
    assert isinstance(created, ev.RunCreated)
    assert forked.status == "succeeded"
    assert (tmp_path / "used").read_text() == second
    assert str(created.inputs["tok"]).startswith("[secret:tok:")
    stored = _stored(tmp_path)
    assert first.encode() not in stored
    assert second.encode() not in stored
