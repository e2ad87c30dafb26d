"""A real `podium serve` app on uvicorn, on 127.0.0.1 and a free port, over a real SQLite store
in a temporary folder, driven by a worker engine; tests talk to it with real httpx clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.runtime.engine import Engine
from podium.server.app import create_app
from podium.server.serving import Server, make_server
from podium.server.tokens import TokenBook

PODIUM = [sys.executable, "-m", "podium.cli.app"]
WAIT_SECONDS = 20.0

GATED = """\
name: gated
steps:
  - {id: build, kind: file, op: write, path: built.txt, content: ok}
  - {id: release, kind: shell, run: [cat, built.txt], needs: [build], approval: required}
  - {id: notes, kind: file, op: write, path: notes.txt, content: n, needs: [build],
     approval: required}
"""
QUICK = """\
name: quick
inputs:
  who: {type: string, default: world}
steps:
  - {id: hello, kind: python, call: "helper:greet"}
  - {id: bye, kind: file, op: write, path: bye.txt, content: "bye ${{ inputs.who }}",
     needs: [hello]}
"""
FLAKY = """\
name: flaky
steps:
  - {id: check, kind: shell, run: [test, -e, flag]}
  - {id: after, kind: file, op: write, path: done.txt, content: ok, needs: [check]}
"""
ASKING = """\
name: asking
steps:
  - {id: pick, kind: human, prompt: "Which team?", input: {choice: [core, web]}}
  - {id: use, kind: file, op: write, path: team.txt, content: "${{ steps.pick.output }}",
     needs: [pick]}
"""


@dataclass
class Served:
    url: str
    client: httpx.AsyncClient
    engine: Engine
    folder: Path
    db: Path
    tokens: TokenBook

    async def submit(self, text: str, **inputs: Any) -> str:
        name = f"wf_{abs(hash(text))}.yaml"
        (self.folder / name).write_text(text)
        reply = await self.client.post("/runs", json={"path": name, "inputs": inputs})
        assert reply.status_code == 201, reply.text
        run_id: str = reply.json()["run_id"]
        return run_id

    async def until(self, run_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll GET /runs/{id} until `done(document)`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            document: dict[str, Any] = (await self.client.get(f"/runs/{run_id}")).json()
            if done(document):
                return document
            assert loop.time() < deadline, document
            await asyncio.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PODIUM_DB"}
        return subprocess.run(
            [*PODIUM, *args, "--db", str(self.db)],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args)
        assert result.returncode in (0, 2), result.stderr
        return json.loads(result.stdout)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(folder: Path, *, mode: str = "worker", **options: Any) -> AsyncIterator[Served]:
    """The app over an engine (a worker, unless `mode` says) on a free loopback port, until
    the block ends."""
    (folder / "helper.py").write_text("def greet() -> str:\n    return 'hi'\n")
    db = folder / "podium.db"
    engine = await Engine.open(db, mode=mode, workspace=folder)
    book = TokenBook(folder / "tokens.json")
    options.setdefault("heartbeat_seconds", 0.5)
    app = create_app(engine, tokens=book, workspace=folder, **options)
    sock = free_socket()
    server: Server = make_server(app, "127.0.0.1", 0, log_level="warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_SECONDS) as client:
            yield Served(url, client, engine, folder, db, book)
    finally:
        server.should_exit = True
        await task
        sock.close()
        await engine.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as here:
        yield here
