"""`podium run examples/ray.yaml` as a real process: with no cluster named, the run starts a local
Ray of its own for its `execution: ray` steps, runs them there and stops it when it ends."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

from .conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray.yaml"


def test_the_ray_example_runs_its_steps_on_a_ray_it_starts(cli: Cli, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "ray.yaml")
    cli.env.pop("PODIUM_RAY_ADDRESS", None)
    result = cli("run", "ray.yaml", "--run-id", "onray")
    assert result.returncode == 0, result.stderr
    doc = cli.show("onray")
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["count"]["output"] == "9 words.txt"
    assert steps["node"]["output"] == platform.node()
    assert (tmp_path / "report.txt").read_text() == f"9 words.txt, counted on {platform.node()}"
