"""The approval policy as real processes: examples/policy.yaml parks on its planner's shell step
and file write (each listed with the rule that holds it), runs them once approved; a project that
blocks an agent makes `validate` exit 2 with the step's path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .conftest import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "scripts" / "policy.yaml"


def _project(cli: Cli) -> list[str]:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    shutil.copy(EXAMPLES / "policy.yaml", cli.folder / "policy.yaml")
    return ["--agents", str(cli.folder), "--model", f"scripted:{SCRIPT}"]


def test_the_example_parks_on_planned_steps_and_runs_them_once_approved(cli: Cli) -> None:
    options = _project(cli)
    parked = cli("run", "policy.yaml", "--run-id", "p1", *options)
    assert parked.returncode == 3, parked.stdout + parked.stderr
    assert "step tally.count awaits approval (policy: planned_shell)" in parked.stdout
    listed = cli("approvals", "--json")
    assert [(w["step_id"], w["reason"]) for w in json.loads(listed.stdout)] == [
        ("tally.count", "policy: planned_shell")
    ]
    ran = cli("approve", "p1", "tally.count", *options)
    assert ran.returncode == 3, ran.stdout + ran.stderr  # now the planned write waits
    assert "tally.save awaits approval (policy: planned_file_writes)" in ran.stdout
    assert not (cli.folder / "count.txt").exists()
    done = cli("approve", "p1", "tally.save", *options)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (cli.folder / "count.txt").read_text() == "counted"
    shown = cli("show", "p1", "tally.count")
    assert "asked (policy: planned_shell)" in shown.stdout
    plans = cli("show", "p1").stdout
    assert "- count [shell]: wc -w notes.txt" in plans
    assert "- save [file]: write count.txt (needs count)" in plans


def test_validate_refuses_an_agent_the_project_blocks(cli: Cli) -> None:
    options = _project(cli)
    (cli.folder / "podium.toml").write_text('[policy]\nblock_agents = ["Writer"]\n')
    (cli.folder / "ask.yaml").write_text(
        "name: ask\nsteps:\n  - {id: hi, kind: shell, run: 'true'}\n"
        "  - {id: draft, kind: agent, agent: writer, prompt: hello}\n"
    )
    refused = cli("validate", "ask.yaml", *options)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "steps[1].agent: agent 'writer' is blocked by the policy" in refused.stderr
