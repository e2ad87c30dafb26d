"""Sub-workflows from the command line, as real processes: `podium run examples/subworkflow.yaml`
needs no API key; `show` lists the child runs under their step and a child names its parent; a
workflow step that recurses is refused by `validate` and `run` (exit 2, nothing recorded);
`podium cancel PARENT` from another process stops the child and its shell process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .conftest import Cli, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_runs_and_show_links_parent_and_children(cli: Cli, tmp_path: Path) -> None:
    for name in ("subworkflow.yaml", "subworkflow-child.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    result = cli("run", "subworkflow.yaml", "--run-id", "sw")
    assert result.returncode == 0, result.stdout + result.stderr

    doc = cli.show("sw")
    assert doc["children"]["greet_en"][0] == {
        "run_id": "sw.greet_en.0",
        "generation": 0,
        "status": "succeeded",
        "error": None,
    }
    report = next(s for s in doc["steps"] if s["id"] == "report")
    assert report["output"] == "Hello, world! / Bonjour, world!"
    assert (doc["parent"], doc["depth"]) == (None, 0)

    child = cli.show("sw.greet_fr.0")
    assert child["parent"] == {"run_id": "sw", "step_id": "greet_fr"}
    assert child["depth"] == 1

    listing = {r["run_id"]: r for r in json.loads(cli("runs", "--json").stdout)}
    assert listing["sw.greet_en.0"]["parent"] == {"run_id": "sw", "step_id": "greet_en"}
    assert listing["sw"]["parent"] is None
    assert "greet (child of sw)" in cli("runs").stdout

    table = cli("show", "sw").stdout
    assert "child runs of step greet_en:" in table
    assert "sw.greet_en.0  succeeded" in table
    assert "sw (step greet_fr, depth 1)" in cli("show", "sw.greet_fr.0").stdout
    step = cli("show", "sw", "greet_en")
    assert step.returncode == 0, step.stderr
    assert "sw.greet_en.0 succeeded" in step.stdout


def test_recursion_is_refused_by_validate_and_run(cli: Cli) -> None:
    cli.write("a.yaml", "name: a\nsteps:\n  - {id: b, kind: workflow, workflow: b.yaml}\n")
    cli.write("b.yaml", "name: b\nsteps:\n  - {id: a, kind: workflow, workflow: a.yaml}\n")
    for command in ("validate", "run"):
        result = cli(command, "a.yaml")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "workflow steps recurse: a.yaml -> b.yaml -> a.yaml" in result.stderr
    assert not cli.db.exists()


def test_cancel_the_parent_from_another_process(cli: Cli, tmp_path: Path) -> None:
    pid_file = tmp_path / "nap.pid"
    cli.write(
        "child.yaml",
        "name: child\nsteps:\n"
        # sandbox: false so that $$ is a host pid: the test checks the process is gone
        f"  - {{id: nap, kind: shell, shell: sh, run: 'echo $$ > {pid_file}; exec sleep 60', "
        "sandbox: false}\n",
    )
    cli.write(
        "parent.yaml", "name: parent\nsteps:\n  - {id: sub, kind: workflow, workflow: child.yaml}\n"
    )
    runner = cli.start("run", "parent.yaml", "--run-id", "p")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the nap")
    pid = int(pid_file.read_text())

    cancelled = cli("cancel", "p", "--reason", "enough")
    assert cancelled.returncode == 0, cancelled.stderr
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, out + err

    parent, child = cli.show("p"), cli.show("p.sub.0")
    assert (parent["status"], child["status"]) == ("cancelled", "cancelled")
    assert child["steps"][0]["status"] == "cancelled"
    assert parent["children"]["sub"][0]["status"] == "cancelled"
    wait_until(lambda: not _alive(pid), "the child's shell process to be gone")
    assert json.loads(cli("show", "p", "--json").stdout)["steps"][0]["status"] == "cancelled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and ") Z " not in stat.read_text()
