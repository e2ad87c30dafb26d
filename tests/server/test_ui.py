"""The web UI's routes on a real server (the page itself is tested in Chromium, tests/browser):
the page with its content policy, its assets, a run's graph drawn by podium.svg with an id per
step, and the schema an approval's edit is checked against in the page."""

from __future__ import annotations

from typing import Any

from .conftest import GATED, Served


def _waiting(document: dict[str, Any]) -> bool:
    return document["status"] == "waiting" and bool(document["approvals"])


async def test_the_page_and_its_assets_are_served(served: Served) -> None:
    page = await served.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/app.js">' in page.text
    for asset in ("app.js", "api.js", "run.js", "graph.js", "schema.js", "style.css"):
        reply = await served.client.get(f"/ui/{asset}")
        assert reply.status_code == 200, asset
    assert (await served.client.get("/ui/nothing.js")).status_code == 404
    direct = await served.client.get("/ui/index.html")  # the page opened by its file name
    assert direct.headers["content-security-policy"] == page.headers["content-security-policy"]
    assert direct.headers["x-content-type-options"] == "nosniff"
    paths = (await served.client.get("/openapi.json")).json()["paths"]
    assert "/runs/{run_id}/graph.svg" in paths
    assert "/" not in paths


async def test_the_graph_is_the_cli_svg_with_an_id_per_step(served: Served) -> None:
    run_id = await served.submit(GATED)
    await served.until(run_id, _waiting)
    reply = await served.client.get(f"/runs/{run_id}/graph.svg")
    assert reply.headers["content-type"].startswith("image/svg+xml")
    assert reply.headers["content-security-policy"].startswith("default-src 'none'")
    for step in ("build", "release", "notes"):
        assert f'<g class="node" id="step-{step}">' in reply.text
    result = served.cli("graph", run_id, "--format", "svg")
    assert reply.text == result.stdout
    missing = await served.client.get("/runs/run_nope/graph.svg")
    assert missing.status_code == 404


async def test_an_edit_schema_is_the_steps_own_fields(served: Served) -> None:
    run_id = await served.submit(GATED)
    await served.until(run_id, _waiting)
    reply = await served.client.get(f"/runs/{run_id}/steps/release/edit-schema")
    document = reply.json()
    assert document["subject"] == "step"
    assert {"run", "env", "needs"} <= set(document["schema"]["properties"])
    unknown = await served.client.get(f"/runs/{run_id}/steps/nope/edit-schema")
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]["message"]
