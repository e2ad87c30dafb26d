"""Issue 8, defect 5 (model strings): `validate` checks the model every agent step would call
(the agent's `model:`, the step's `model:`, `--model`), as `run` does, so a model `run` would
refuse is refused by `validate` first, with the built-in and configured providers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = "name: w\nsteps:\n  - {{id: ask, kind: agent, agent: {agent}, prompt: hi{model}}}\n"
CONFIG = '[providers.local]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "plain.md").write_text("---\nname: plain\n---\nYou help.\n")
    (tmp_path / "agents" / "odd.md").write_text("---\nname: odd\nmodel: nosuch:x\n---\nHi.\n")
    (tmp_path / "podium.toml").write_text(CONFIG)
    return tmp_path


def _validate(folder: Path, agent: str, model: str = "", *flags: str) -> tuple[int, str]:
    text = WORKFLOW.format(agent=agent, model=f", model: '{model}'" if model else "")
    (folder / "w.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_MODEL", "PODIUM_CONFIG")}
    argv = [sys.executable, "-m", "podium.cli.app", "validate", "w.yaml", *flags]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder, env=env)
    return done.returncode, done.stderr


def test_an_agents_model_with_an_unknown_provider_fails_validate(folder: Path) -> None:
    code, err = _validate(folder, "odd")
    assert code == 2
    assert "unknown model provider 'nosuch'" in err
    assert "configured: local" in err


def test_a_steps_model_with_an_unknown_provider_fails_validate(folder: Path) -> None:
    code, err = _validate(folder, "plain", "bogus:x")
    assert code == 2
    assert "step 'ask' (agent 'plain'): unknown model provider 'bogus'" in err


def test_model_flag_is_checked_and_a_configured_provider_passes(folder: Path) -> None:
    code, err = _validate(folder, "plain", "", "--model", "bogus:x")
    assert code == 2
    assert "the default model: unknown model provider 'bogus'" in err
    code, err = _validate(folder, "plain", "", "--model", "local:smollm2")
    assert code == 0, err


def test_an_agent_step_with_no_model_anywhere_fails_validate(folder: Path) -> None:
    code, err = _validate(folder, "plain")
    assert code == 2
    assert "has no model" in err


PLAN = "name: p\nsteps:\n  - {id: plan, kind: plan, goal: g, planner: boss, agents: [plain, odd]}\n"


def test_the_agents_a_plan_step_may_use_are_checked_before_the_planner_runs(folder: Path) -> None:
    (folder / "agents" / "boss.md").write_text("---\nname: boss\nmodel: local:m\n---\nPlan.\n")
    (folder / "w.yaml").write_text(PLAN)
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_MODEL", "PODIUM_CONFIG")}
    for command in ("validate", "run"):
        argv = [sys.executable, "-m", "podium.cli.app", command, "w.yaml", "--model", "local:m"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder, env=env)
        assert done.returncode == 2, done.stderr
        assert "step 'plan' (agent 'odd'): unknown model provider 'nosuch'" in done.stderr
    assert not (folder / ".podium").exists()  # `run` refused before any store was made


def test_a_built_in_provider_without_its_key_fails_validate(folder: Path) -> None:
    (folder / "w.yaml").write_text(WORKFLOW.format(agent="plain", model=", model: 'openai:m'"))
    drop = ("PODIUM_MODEL", "PODIUM_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    argv = [sys.executable, "-m", "podium.cli.app", "validate", "w.yaml"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder, env=env)
    assert done.returncode == 2
    assert "uses openai:m, which cannot be called: no API key; set OPENAI_API_KEY" in done.stderr
    env["OPENAI_API_KEY"] = "sk-test"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
