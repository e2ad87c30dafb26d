"""The web UI end to end in headless Chromium against a real `podium serve`: the runs list, a run
started from the page, its graph and timeline updating live, an approval edited and approved from
the panel, the run finishing; and a plan approved after the page refused an invalid edit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import ROOT, shot
from tests.server.process import Served, serve, stop

pytestmark = pytest.mark.browser

RELEASE = {
    "name": "release",
    "steps": [
        {"id": "build", "kind": "shell", "shell": "sh", "run": "sleep 0.5; echo built"},
        {"id": "test_a", "kind": "shell", "needs": ["build"], "shell": "sh", "run": "sleep 1"},
        {"id": "test_b", "kind": "shell", "needs": ["build"], "shell": "sh", "run": "sleep 1"},
        {
            "id": "ship",
            "kind": "shell",
            "needs": ["test_a", "test_b"],
            "shell": "sh",
            "approval": "required",
            "env": {"CHANNEL": "stable"},
            "run": 'sleep 1; echo "shipped to $CHANNEL"',
        },
    ],
}


def node(page: Page, step: str, status: str) -> str:
    return f'#graph g.node[data-step="{step}"][data-status="{status}"]'


def test_start_watch_approve_with_an_edit_and_finish(server: Served, page: Page) -> None:
    page.goto(server.url + "/")
    expect(page.locator("main")).to_contain_text("No runs yet")
    shot(page, "01-runs-empty")

    page.click("text=New run")
    page.fill("#workflow-doc", json.dumps(RELEASE, indent=2))
    page.click("text=Check")
    expect(page.locator(".problems")).to_contain_text("valid: 4 steps")
    page.click("#start")

    page.wait_for_selector(node(page, "build", "running"))  # the graph follows the run live
    page.wait_for_selector(node(page, "test_a", "running"))
    expect(page.locator('#graph g.node[data-step="test_b"]')).to_have_attribute(
        "data-status", "running"
    )
    shot(page, "02-run-live")
    card = page.locator('article.approval[data-step="ship"]')
    expect(card).to_be_visible(timeout=20_000)
    assert page.locator(node(page, "ship", "waiting")).count() == 1
    expect(page.locator("#gantt + *, .panel")).not_to_have_count(0)
    assert "at most 2 at once" in page.inner_text("main")  # test_a and test_b overlapped
    shot(page, "03-approval")

    editor = card.locator("textarea")
    asked = json.loads(editor.input_value())
    assert asked["env"] == {"CHANNEL": "stable"}
    editor.fill(json.dumps({**asked, "env": {"CHANNEL": 7}}))
    expect(card.locator(".problems")).to_contain_text("env.CHANNEL should be string")
    editor.fill(json.dumps({**asked, "env": {"CHANNEL": "beta"}}))
    expect(card.locator("button.approve")).to_have_text("Approve with edit")
    expect(card.locator(".problems")).to_have_text("")
    card.locator("button.approve").click()

    page.wait_for_selector(node(page, "ship", "running"))
    page.wait_for_selector('main[data-status="succeeded"]', timeout=20_000)
    page.locator('#graph g.node[data-step="ship"]').click()
    expect(page.locator("#details")).to_contain_text("shipped to beta")
    shot(page, "04-run-succeeded")

    page.click("text=Runs")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody tr")).to_have_attribute("data-status", "succeeded")


def test_a_new_run_shows_up_in_the_runs_list_without_a_reload(server: Served, page: Page) -> None:
    page.goto(server.url + "/")
    expect(page.locator("main")).to_contain_text("No runs yet")
    expect(page.locator("#live")).to_have_text("live")  # GET /events, not polling
    run = server.call("POST", "/runs", {"workflow": RELEASE})
    row = page.locator(f'#runs tbody tr[data-run="{run["run_id"]}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_have_attribute("data-status", "waiting", timeout=20_000)
    page.select_option("#status-filter", "succeeded")
    expect(page.locator("main")).to_contain_text("No succeeded runs.")
    page.select_option("#status-filter", "waiting")
    expect(row).to_be_visible()
    resumed: list[str] = []
    page.on(
        "request",
        lambda r: (
            resumed.append(r.headers.get("last-event-id", ""))
            if r.url.endswith("/events")
            else None
        ),
    )
    page.goto(f"{server.url}/#/runs/{run['run_id']}")
    page.goto(f"{server.url}/#/")  # back to the list: the stream resumes, no replay
    expect(page.locator("#live")).to_have_text("live")
    assert resumed
    assert int(resumed[-1] or 0) > 0


PLANNED = {
    "name": "research",
    "steps": [
        {
            "id": "plan",
            "kind": "plan",
            "goal": "Write a short briefing on durable workflow engines.",
            "planner": "planner",
            "aggregator": "writer",
            "confirm": True,
        }
    ],
}


@pytest.fixture
def planning(tmp_path: Path) -> Served:
    shutil.copytree(ROOT / "examples" / "agents", tmp_path / "agents")
    script = ROOT / "examples" / "scripts" / "research.yaml"
    served = serve(tmp_path, "--agents", str(tmp_path), "--model", f"scripted:{script}")
    yield served  # type: ignore[misc]
    stop(served)


def test_a_plan_edit_is_checked_in_the_page_then_approved(planning: Served, page: Page) -> None:
    run_id = planning.call("POST", "/runs", {"workflow": PLANNED})["run_id"]
    page.goto(f"{planning.url}/#/runs/{run_id}")
    card = page.locator('article.approval[data-subject="plan"]')
    expect(card).to_be_visible(timeout=20_000)
    editor = card.locator("textarea")
    plan = json.loads(editor.input_value())
    assert [s["id"] for s in plan["steps"]] == ["durability", "scheduling", "draft"]

    broken = json.loads(json.dumps(plan))
    broken["steps"][2]["needs"] = ["durability", "nowhere"]
    broken["steps"][0]["colour"] = "red"
    editor.fill(json.dumps(broken, indent=2))
    problems = card.locator(".problems")
    expect(problems).to_contain_text("steps[0].colour is not a field here")
    card.locator("button.approve").click()  # refused in the page: nothing is sent
    expect(problems).to_contain_text('steps[2].needs[1] no step "nowhere" in this plan')
    assert planning.call("GET", f"/runs/{run_id}")["approvals"][0]["subject"] == "plan"
    editor.fill("{ not json")
    expect(problems).to_contain_text("not JSON (line 1")

    plan["steps"][2]["task"] = "Draft a one-paragraph briefing from the two notes."
    editor.fill(json.dumps(plan, indent=2))
    expect(card.locator("button.approve")).to_have_text("Approve with edit")
    card.locator("button.approve").click()
    page.wait_for_selector('main[data-status="succeeded"]', timeout=30_000)
    expect(page.locator("#graph g.group")).to_have_count(1)  # the children under their plan
    expect(page.locator("#plans .plan-version")).not_to_have_count(0)
    page.locator('#graph g.node[data-step="plan.draft"]').click()
    expect(page.locator("#details")).to_contain_text("Draft a one-paragraph briefing")
    tokens = page.inner_text("#tokens")
    assert int(tokens.split()[0]) > 0, tokens
    shot(page, "05-plan-succeeded", docs="ui-run.png")


ASKING = {
    "name": "asking",
    "steps": [
        {
            "id": "team",
            "kind": "human",
            "prompt": "Which team?",
            "input": {"choice": ["core", "web"]},
        },
        {
            "id": "sizes",
            "kind": "human",
            "prompt": "Shard sizes?",
            "input": {"type": "array", "items": {"type": "integer"}},
        },
        {"id": "why", "kind": "human", "prompt": "Why now?"},
    ],
}


def test_human_steps_are_answered_from_the_panel(server: Served, page: Page) -> None:
    run_id = server.call("POST", "/runs", {"workflow": ASKING})["run_id"]
    page.goto(f"{server.url}/#/runs/{run_id}")
    team = page.locator('article.approval[data-step="team"]')
    expect(team).to_contain_text("Which team?")
    why = page.locator('article.approval[data-step="why"]')
    why.locator("textarea").fill("the <b>deadline</b>")  # typed before another is decided
    team.locator("select").select_option(label="web")
    team.locator("button").click()
    expect(team).to_have_count(0)
    expect(why.locator("textarea")).to_have_value("the <b>deadline</b>")
    sizes = page.locator('article.approval[data-step="sizes"]')
    sizes.locator("textarea").fill('[1, "two"]')
    sizes.locator("button").click()
    expect(sizes.locator(".problems")).to_contain_text("[1] should be integer, not string")
    sizes.locator("textarea").fill("[1, 2]")
    sizes.locator("button").click()
    why.locator("button").click()
    page.wait_for_selector('main[data-status="succeeded"]', timeout=20_000)
    outputs = {s["id"]: s["output"] for s in server.call("GET", f"/runs/{run_id}")["steps"]}
    assert outputs == {"team": "web", "sizes": [1, 2], "why": "the <b>deadline</b>"}


WRITER = "---\nname: cleaner\nmodel: scripted:script.yaml\ntools: [write_file]\n---\nWrite.\n"
WRITES = """agents:
  cleaner:
    - tool_calls: [{name: write_file, arguments: {path: a.txt, content: hi}}]
    - content: done
"""


@pytest.fixture
def writing(tmp_path: Path) -> Served:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "cleaner.md").write_text(WRITER)
    (tmp_path / "script.yaml").write_text(WRITES)
    served = serve(tmp_path, "--agents", str(tmp_path))
    yield served  # type: ignore[misc]
    stop(served)


def test_a_held_tool_call_is_edited_against_the_tools_schema(writing: Served, page: Page) -> None:
    workflow = {
        "name": "notes",
        "steps": [{"id": "note", "kind": "agent", "agent": "cleaner", "prompt": "Write it"}],
    }
    run_id = writing.call("POST", "/runs", {"workflow": workflow})["run_id"]
    page.goto(f"{writing.url}/#/runs/{run_id}")
    card = page.locator('article.approval[data-subject="tool"]')
    expect(card).to_be_visible(timeout=20_000)
    editor = card.locator("textarea")
    assert json.loads(editor.input_value()) == {"path": "a.txt", "content": "hi"}
    editor.fill(json.dumps({"path": 3, "content": "hi"}))
    expect(card.locator(".problems")).to_contain_text("path should be string, not number")
    editor.fill(json.dumps({"path": "b.txt", "content": "hi"}))
    card.locator("button.approve").click()
    page.wait_for_selector('main[data-status="succeeded"]', timeout=20_000)
    assert (writing.workspace / "b.txt").read_text() == "hi"
    assert not (writing.workspace / "a.txt").exists()
    page.locator('#graph g.node[data-step="note"]').click()
    expect(page.locator("#details")).to_contain_text("write_file")
