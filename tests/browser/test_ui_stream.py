"""How the page reads event streams (server/static/api.js) in Chromium: the parser against a
real stream's bytes cut at every point, and `follow` against a real `podium serve` run stream."""

from __future__ import annotations

import urllib.request

import pytest
from playwright.sync_api import Page
from tests.server.process import Served

pytestmark = pytest.mark.browser

WORKFLOW = {
    "name": "three",
    "steps": [
        {"id": "a", "kind": "file", "op": "write", "path": "a.txt", "content": "a"},
        {"id": "b", "kind": "file", "op": "write", "path": "b.txt", "content": "b", "needs": ["a"]},
    ],
}


def test_every_message_survives_any_chunking(server: Served, page: Page) -> None:
    run_id = server.call("POST", "/runs", {"workflow": WORKFLOW})["run_id"]
    server.wait_for(run_id, "succeeded")
    with urllib.request.urlopen(f"{server.url}/runs/{run_id}/events") as response:
        wire = response.read().decode()
    assert "\r\n" in wire  # what sse-starlette sends: the case a cut can split
    page.goto(server.url + "/ui/style.css")
    seen = page.evaluate(
        """async (wire) => {
            const { sseParser } = await import("/ui/api.js");
            const whole = sseParser()(wire).map((m) => m.id);
            const cuts = [];
            for (let at = 1; at < wire.length; at++) {
                const parse = sseParser();
                const parts = [...parse(wire.slice(0, at)), ...parse(wire.slice(at))];
                const ids = parts.map((m) => m.id);
                if (JSON.stringify(ids) !== JSON.stringify(whole)) cuts.push(at);
            }
            return { whole, cuts };
        }""",
        wire,
    )
    assert seen["cuts"] == []
    assert seen["whole"] == [str(n) for n in range(1, len(seen["whole"]) + 1)]
    assert len(seen["whole"]) >= 6  # created, two steps started and succeeded, completed


def test_follow_reads_a_run_stream_to_its_end(server: Served, page: Page) -> None:
    run_id = server.call("POST", "/runs", {"workflow": WORKFLOW})["run_id"]
    page.goto(server.url + "/ui/style.css")
    kinds = page.evaluate(
        """async (runId) => {
            const { follow } = await import("/ui/api.js");
            return await new Promise((resolve) => {
                const kinds = [];
                follow(`/runs/${runId}/events`, {
                    onMessage: (m) => kinds.push([Number(m.id), JSON.parse(m.data).kind]),
                    onEnd: () => resolve(kinds),
                });
            });
        }""",
        run_id,
    )
    assert [seq for seq, _ in kinds] == list(range(1, len(kinds) + 1))
    assert kinds[0][1] == "run.created"
    assert kinds[-1][1] == "run.completed"
