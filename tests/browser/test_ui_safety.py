"""What the page must never do, in headless Chromium against a real `podium serve`: run markup
that came from a workflow or a step (names, outputs, errors, approval inputs are shown as text),
or show anything to a browser without the server's token."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import shot
from tests.server.process import PODIUM, Served, serve, stop

pytestmark = pytest.mark.browser

PAYLOAD = '<img src=x onerror="window.__pwned=(window.__pwned||0)+1">'
HOSTILE = {
    "name": f"hostile {PAYLOAD}",
    "steps": [
        {"id": "echo", "kind": "shell", "run": ["printf", "%s", PAYLOAD]},
        {
            "id": "broken",
            "kind": "shell",
            "shell": "sh",
            "allow_failure": True,
            "run": f"echo '{PAYLOAD}' >&2; exit 3",
        },
        {
            "id": "ask",
            "kind": "shell",
            "needs": ["echo"],
            "approval": "required",
            "run": ["printf", "%s", PAYLOAD + "<script>window.__pwned=99</script>"],
        },
    ],
}


def test_model_and_user_strings_are_shown_as_text_and_never_run(server: Served, page: Page) -> None:
    run_id = server.call("POST", "/runs", {"workflow": HOSTILE})["run_id"]
    server.wait_for(run_id, "waiting")
    page.goto(server.url + "/")
    expect(page.locator("#runs")).to_contain_text(f"hostile {PAYLOAD}")
    page.goto(f"{server.url}/#/runs/{run_id}")
    expect(page.locator('article.approval[data-step="ask"]')).to_be_visible()
    page.locator('#graph g.node[data-step="echo"]').click()
    expect(page.locator("#details pre.output")).to_have_text(PAYLOAD)
    page.locator('#graph g.node[data-step="broken"]').click()
    expect(page.locator("#details")).to_contain_text("onerror=")
    asked = page.locator('article.approval[data-step="ask"] textarea').input_value()
    assert json.loads(asked)["run"][2] == PAYLOAD + "<script>window.__pwned=99</script>"
    expect(page.locator("#graph svg title").first).to_contain_text(PAYLOAD)
    page.wait_for_timeout(300)  # an image that failed to load would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, script:not([src]), #main iframe").count() == 0
    shot(page, "10-hostile-strings")


def test_the_page_is_served_with_a_strict_content_security_policy(server: Served) -> None:
    with urllib.request.urlopen(server.url + "/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy


@pytest.fixture
def guarded(tmp_path: Path) -> Served:
    tokens = tmp_path / "tokens.json"
    argv = [
        str(PODIUM),
        "token",
        "create",
        "--scope",
        "write",
        "--scope",
        "approve",
        "--tokens",
        str(tokens),
    ]
    secret = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
    served = serve(tmp_path, "--tokens", str(tokens), token=secret)
    yield served  # type: ignore[misc]
    stop(served)


def test_a_server_with_tokens_gets_one_from_the_person_and_keeps_it_in_the_tab(
    guarded: Served, page: Page
) -> None:
    run_id = guarded.call("POST", "/runs", {"workflow": HOSTILE})["run_id"]
    page.goto(guarded.url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#runs tbody tr")).to_have_count(0)
    page.fill("#token-input", "pdm_wrong")
    page.click("#token-form button")
    expect(page.locator("#token-error")).to_contain_text("not known here")
    page.fill("#token-input", guarded.token or "")
    page.click("#token-form button")
    expect(page.locator(f'#runs tbody tr[data-run="{run_id}"]')).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('podium.token')") == guarded.token
    page.goto(f"{guarded.url}/#/runs/{run_id}")  # the event stream sends it too
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator('article.approval[data-step="ask"]')).to_be_visible()
