"""The browser tier: a real `podium serve` subprocess on a free loopback port over a real SQLite
store, driven by Playwright in Debian's headless Chromium. Screenshots go to build/screenshots/
(gitignored); `make test-browser` runs this tier (`pytest -m browser`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("PODIUM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PODIUM = Path(sys.executable).with_name("podium")


def _free_port() -> int:
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
    port = _free_port()
    log = workspace / "serve.log"
    argv = [str(PODIUM), "serve", "--port", str(port), "--db", f"sqlite:///{workspace}/podium.db"]
    argv += ["--workspace", str(workspace), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workspace, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", workspace, process, token, log)
    deadline = time.monotonic() + 30
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


def stop(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    served = serve(tmp_path)
    yield served
    stop(served)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: the page's Content-Security-Policy would stop an injected handler anyway;
    # without it the XSS test proves the page itself never turns a string into markup (and
    # Playwright's wait_for_function needs eval, which the policy forbids).
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page threw: {errors}"


def shot(page: Page, name: str, *, full_page: bool = True, docs: str | None = None) -> Path:
    """Save a screenshot to build/screenshots/NAME.png; with PODIUM_DOCS_SCREENSHOTS=1 also to
    docs/DOCS (the README's pictures are made this way)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs is not None and os.environ.get("PODIUM_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(path, ROOT / "docs" / docs)
    return path
