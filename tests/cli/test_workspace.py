"""The workspace rule through the real CLI: a run works in its workflow file's folder (or
`--workspace DIR`) whatever the current directory, prints it, and keeps it for later commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

from podium.runtime.engine import Engine

from .conftest import PODIUM, Cli

WORKFLOW = """\
name: here
steps:
  - {id: write, kind: file, op: write, path: out/note.txt, content: hello}
  - {id: read, kind: shell, run: [cat, out/note.txt], needs: [write]}
  - {id: call, kind: python, call: "helper:greet", needs: [read]}
"""

GATED = """\
name: gated
steps:
  - {id: gate, kind: shell, run: [test, -e, flag]}
  - {id: after, kind: file, op: write, path: done.txt, content: ok, needs: [gate]}
"""


def _project(cli: Cli) -> Path:
    sub = cli.folder / "project"
    sub.mkdir()
    (sub / "wf.yaml").write_text(WORKFLOW)
    (sub / "helper.py").write_text("def greet() -> str:\n    return 'hi from the workspace'\n")
    (cli.folder / "elsewhere").mkdir()
    return sub


def _in(cli: Cli, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli.argv(*args), cwd=cwd, env=cli.env, capture_output=True, text=True, timeout=30
    )


def _outputs(cli: Cli, run_id: str) -> dict[str, object]:
    return {s["id"]: s.get("output") for s in cli.show(run_id)["steps"]}


def test_a_run_works_in_its_files_folder_from_anywhere(cli: Cli) -> None:
    sub = _project(cli)
    outside = _in(cli, cli.folder / "elsewhere", "run", "../project/wf.yaml", "--run-id", "a")
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert outside.stdout.splitlines()[:2] == ["run a", f"workspace: {sub.resolve()}"]
    assert (sub / "out" / "note.txt").read_text() == "hello"
    assert not (cli.folder / "elsewhere" / "out").exists()
    inside = _in(cli, sub, "run", "wf.yaml", "--run-id", "b")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert _outputs(cli, "a") == _outputs(cli, "b")
    assert _outputs(cli, "a")["call"] == "hi from the workspace"


def test_workspace_option_chooses_the_folder(cli: Cli) -> None:
    sub = _project(cli)
    chosen = cli.folder / "chosen"
    chosen.mkdir()
    (chosen / "helper.py").write_text("def greet() -> str:\n    return 'chosen'\n")
    result = cli("run", str(sub / "wf.yaml"), "--workspace", str(chosen), "--run-id", "c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"workspace: {chosen.resolve()}" in result.stdout
    assert (chosen / "out" / "note.txt").read_text() == "hello"
    assert not (sub / "out").exists()


def test_a_missing_workspace_is_bad_input_and_records_nothing(cli: Cli) -> None:
    sub = _project(cli)
    result = cli("run", str(sub / "wf.yaml"), "--workspace", "nowhere")
    assert result.returncode == 2
    assert "workspace nowhere does not exist" in result.stderr
    assert not cli.db.exists()


def test_a_retry_from_another_folder_works_in_the_runs_workspace(cli: Cli) -> None:
    sub = cli.folder / "gated"
    sub.mkdir()
    (sub / "wf.yaml").write_text(GATED)
    (cli.folder / "elsewhere").mkdir()
    first = cli("run", "gated/wf.yaml", "--run-id", "g")
    assert first.returncode == 1, first.stdout + first.stderr
    (sub / "flag").touch()
    again = _in(cli, cli.folder / "elsewhere", "retry", "g", "gate")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (sub / "done.txt").read_text() == "ok"


def test_the_default_store_is_under_the_current_directory(cli: Cli) -> None:
    _project(cli)
    env = {k: v for k, v in cli.env.items() if k != "PODIUM_DB"}
    run = subprocess.run(
        [*PODIUM, "run", "project/wf.yaml", "--run-id", "d"],
        cwd=cli.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (cli.folder / ".podium" / "podium.db").is_file()
    assert not (cli.folder / "project" / ".podium" / "podium.db").exists()


async def test_the_engine_follows_the_same_rule(tmp_path: Path) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    (sub / "wf.yaml").write_text(WORKFLOW.replace("helper:", "workspace_rule_helper:"))
    (sub / "workspace_rule_helper.py").write_text("def greet() -> str:\n    return 'api'\n")
    async with await Engine.open(tmp_path / "p.db") as engine:
        state = await engine.run(str(sub / "wf.yaml"))
    assert state.status == "succeeded", state.completed_error
    assert state.workspace_path == sub.resolve()
    assert state.steps["call"].output == "api"
