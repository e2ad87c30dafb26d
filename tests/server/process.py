"""A real `podium serve` subprocess on a free loopback port over a real SQLite store: what the
browser tier and the schema fuzzing talk to."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PODIUM = Path(sys.executable).with_name("podium")
START_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """A running `podium serve`: its base URL, workspace and (if any) the token it wants."""

    url: str
    workspace: Path
    process: subprocess.Popen[bytes]
    token: str | None = None
    log: Path = field(default_factory=Path)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait_for(self, run_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.call("GET", f"/runs/{run_id}")
            ended = run["status"] in ("succeeded", "failed", "cancelled")
            if run["status"] == status or ended or time.monotonic() > deadline:
                assert run["status"] == status, f"run {run_id} is {run['status']}: {run['error']}"
                return dict(run)
            time.sleep(0.1)


def serve(workspace: Path, *extra: str, token: str | None = None) -> Served:
    """Start `podium serve` in `workspace` and wait until it answers (its output goes to
    serve.log there)."""
    port = free_port()
    log = workspace / "serve.log"
    argv = [str(PODIUM), "serve", "--port", str(port), "--db", f"sqlite:///{workspace}/podium.db"]
    argv += ["--workspace", str(workspace), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workspace, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", workspace, process, token, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"podium serve exited: {log.read_text()}")
        try:
            urllib.request.urlopen(served.url + "/openapi.json", timeout=1).close()
            return served
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    stop(served)
    raise AssertionError(f"podium serve did not answer within 30 s: {log.read_text()}")


def stop(served: Served) -> int:
    """SIGTERM (a graceful stop), SIGKILL if it does not end in 15 s; its exit code."""
    served.process.send_signal(signal.SIGTERM)
    try:
        return served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        return served.process.wait()
