"""Record and replay: `podium script RUN` writes a run's recorded replies as a script, and
`podium run FILE --model scripted:SCRIPT` replays that run offline, step by step, as recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .conftest import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "scripts" / "research.yaml"


def _outputs(cli: Cli, run_id: str) -> dict[str, object]:
    return {step["id"]: step["output"] for step in cli.show(run_id)["steps"]}


def test_a_recorded_run_replays_offline_with_the_same_answers(cli: Cli) -> None:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    workflow = shutil.copy(EXAMPLES / "research.yaml", cli.folder / "research.yaml")
    agents = ["--agents", str(cli.folder)]
    first = cli("run", str(workflow), "--run-id", "rec", *agents, "--model", f"scripted:{SCRIPT}")
    assert first.returncode == 0, first.stdout + first.stderr

    written = cli("script", "rec", "-o", str(cli.folder / "replay.yaml"))
    assert written.returncode == 0, written.stderr
    assert "replies of" in written.stdout
    script = yaml.safe_load((cli.folder / "replay.yaml").read_text())
    assert set(script) == {"model", "steps"}
    assert "plan" in script["steps"]  # the supervisor's reply, keyed by its step

    replay = cli.folder / "replay.yaml"
    again = cli("run", str(workflow), "--run-id", "again", *agents, "--model", f"scripted:{replay}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _outputs(cli, "again") == _outputs(cli, "rec")


def test_a_run_without_model_replies_has_nothing_to_replay(cli: Cli) -> None:
    workflow = cli.write("w.yaml", "name: w\nsteps:\n  - {id: a, kind: shell, run: 'true'}\n")
    assert cli("run", str(workflow), "--run-id", "plain").returncode == 0
    refused = cli("script", "plain")
    assert refused.returncode == 2
    assert "recorded no model replies" in refused.stderr
    assert cli("script", "ghost").returncode == 2  # an unknown run
