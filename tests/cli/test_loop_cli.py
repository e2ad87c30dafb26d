"""Loops from the command line, as real processes: `podium run examples/loop.yaml` needs no
API key; `show` lists each iteration's steps under the loop, `show RUN grow.2.double` shows one
of them, `graph` draws the iterations; a loop without a bound is refused with exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import Cli
from .test_cli import assert_one_line_error

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "loop.yaml"


def test_the_loop_example_runs_and_shows_its_iterations(cli: Cli, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "loop.yaml")
    result = cli("run", "loop.yaml", "--run-id", "loopy")
    assert result.returncode == 0, result.stderr

    doc = cli.show("loopy")
    grow = next(s for s in doc["steps"] if s["id"] == "grow")
    assert grow["output"] == {"double": "96", "check": {"big": True}}
    assert doc["loops"]["grow"]["stopped"] == "until"
    assert len(doc["loops"]["grow"]["iterations"]) == 5
    report = next(s for s in doc["steps"] if s["id"] == "report")
    assert report["output"] == "reached 96 in iteration 5; the first gave 6"

    table = cli("show", "loopy").stdout
    rows = [line.split()[0] for line in table.splitlines() if line.strip().startswith("grow")]
    assert rows[:3] == ["grow", "grow.1.double", "grow.1.check"]  # iterations under the loop
    assert "5 iterations, until held" in table

    one = cli("show", "loopy", "grow.2.double")
    assert one.returncode == 0, one.stderr
    assert "grow, iteration 2" in one.stdout
    assert "echo $(( 6 * 2 ))" in one.stdout

    picture = cli("graph", "loopy")
    assert picture.returncode == 0, picture.stderr
    assert 'subgraph g1["grow.2.*"]' in picture.stdout


def test_a_loop_without_a_bound_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "name: unbounded\nsteps:\n  - id: l\n    kind: loop\n    steps:\n"
        "      - {id: a, kind: shell, run: 'true'}\n"
    )
    result = cli("run", "wf.yaml")
    assert result.returncode == 2
    assert "steps[0].max_iterations: a loop needs a bound" in result.stderr
    assert not cli.db.exists() or "unbounded" not in cli("runs").stdout
    validate = cli("validate", "wf.yaml")
    assert validate.returncode == 2
    assert "Traceback" not in validate.stderr


def test_show_of_an_iteration_that_never_ran_says_which_steps_exist(
    cli: Cli, tmp_path: Path
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "loop.yaml")
    assert cli("run", "loop.yaml", "--run-id", "short", "--input", "limit=1").returncode == 0
    result = cli("show", "short", "grow.2.double")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "grow.2.double")
