"""`podium plan`, `approve` and `reject` as real processes, with the offline scripted model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .conftest import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "scripts" / "research.yaml"


def _project(cli: Cli) -> list[str]:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    return ["--agents", str(cli.folder), "--model", f"scripted:{SCRIPT}"]


def test_plan_a_goal_end_to_end(cli: Cli) -> None:
    options = _project(cli)
    result = cli("plan", "Write a briefing on durable engines", "--aggregator", "writer", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.split()[1]
    assert "planned      version 1: 3 steps" in result.stdout
    assert "model call" in result.stdout
    doc = cli.show(run_id)
    assert doc["status"] == "succeeded"
    assert [len(v["steps"]) for v in doc["plans"]["plan"]] == [3]
    ids = {s["id"] for s in doc["steps"]}
    assert {"plan", "plan.durability", "plan.scheduling", "plan.draft", "plan.aggregate"} == ids
    assert doc["tokens"] > 0
    assert "plans of step plan:" in cli("show", run_id).stdout


def test_confirm_parks_then_a_bad_edit_is_refused_and_approval_runs(cli: Cli) -> None:
    options = _project(cli)
    parked = cli("plan", "Brief me", "--confirm", "--run-id", "p1", *options)
    assert parked.returncode == 3, parked.stdout + parked.stderr
    assert "awaits approval" in parked.stdout
    assert "podium approve p1 plan" in parked.stdout
    bad = cli.folder / "bad.json"
    bad.write_text(json.dumps({"steps": [{"id": "x", "agent": "ghost", "task": "t"}]}))
    refused = cli("approve", "p1", "--edit", str(bad), *options)
    assert refused.returncode == 2
    assert "steps[0].agent" in refused.stderr
    assert cli.show("p1")["status"] == "waiting"  # nothing was recorded
    good = cli.folder / "good.json"
    edited = {"steps": [{"id": "only", "agent": "researcher", "task": "list facts"}]}
    good.write_text(json.dumps(edited))
    approved = cli("approve", "p1", "--edit", str(good), *options)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    doc = cli.show("p1")
    assert {s["id"] for s in doc["steps"]} == {"plan", "plan.only"}
    assert len(doc["plans"]["plan"]) == 2  # the proposed plan and the edited one


def test_reject_fails_the_run_with_the_reason(cli: Cli) -> None:
    options = _project(cli)
    assert cli("plan", "Brief me", "--confirm", "--run-id", "p2", *options).returncode == 3
    rejected = cli("reject", "p2", "--reason", "too broad")
    assert rejected.returncode == 1
    doc = cli.show("p2")
    assert doc["status"] == "failed"
    assert "plan rejected: too broad" in doc["error"]


def test_nothing_to_approve_is_bad_input(cli: Cli) -> None:
    options = _project(cli)
    assert cli("plan", "Brief me", "--run-id", "p3", *options).returncode == 0
    result = cli("approve", "p3")
    assert result.returncode == 2
    assert "nothing to approve" in result.stderr


def test_approve_elsewhere_uses_the_agents_the_run_started_with(cli: Cli) -> None:
    options = _project(cli)
    assert cli("plan", "Brief me", "--confirm", "--run-id", "p4", *options).returncode == 3
    elsewhere = cli.folder / "elsewhere"
    elsewhere.mkdir()
    approved = subprocess.run(
        cli.argv("approve", "p4"), cwd=elsewhere, env=cli.env, capture_output=True, text=True
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert cli.show("p4")["status"] == "succeeded"
