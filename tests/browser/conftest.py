"""The browser tier: a real `podium serve` subprocess on a free loopback port over a real SQLite
store, driven by Playwright in Debian's headless Chromium. Screenshots go to build/screenshots/
(gitignored); `make test-browser` runs this tier (`pytest -m browser`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.server.process import Served, serve, stop

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("PODIUM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


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
