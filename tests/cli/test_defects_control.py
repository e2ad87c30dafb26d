"""Issue 8's control and store defects, through the real CLI: a finished run's plan cannot be
decided, a bad `--edit` file is one line, read-only commands never create or change a store,
and a bad `--model` is refused before any run exists."""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from .conftest import PODIUM, Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "scripts" / "research.yaml"

MIXED = """\
name: mixed
steps:
  - id: plan
    kind: plan
    goal: Brief me
    planner: planner
    confirm: true
  - id: broken
    kind: shell
    shell: sh
    run: while [ ! -e go ]; do sleep 0.05; done; exit 3
"""

AGENT = """\
name: asks
steps:
  - id: ask
    kind: agent
    agent: researcher
    prompt: list facts
"""


def _project(cli: Cli) -> list[str]:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    return ["--agents", str(cli.folder), "--model", f"scripted:{SCRIPT}"]


# -- defect 1: approve and reject on a cancelled or failed run ----------------------------------


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_a_cancelled_runs_plan_cannot_be_decided(cli: Cli, verb: str) -> None:
    options = _project(cli)
    assert cli("plan", "Brief me", "--confirm", "--run-id", "c1", *options).returncode == 3
    assert cli("cancel", "c1").returncode == 0
    before = len(cli("events", "c1", "--json").stdout.splitlines())
    refused = cli(verb, "c1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "run c1 is cancelled" in refused.stderr
    assert "`podium retry c1 plan`" in refused.stderr
    assert len(cli("events", "c1", "--json").stdout.splitlines()) == before  # nothing posted
    retried = cli("retry", "c1", "plan", *options)  # the way out the message names works
    assert retried.returncode == 3, retried.stdout + retried.stderr
    assert cli(verb, "c1").returncode == (0 if verb == "approve" else 1)


def test_a_failed_runs_plan_cannot_be_approved_until_the_failure_is_retried(cli: Cli) -> None:
    options = _project(cli)
    cli.write("mixed.yaml", MIXED)
    runner = cli.start("run", "mixed.yaml", "--run-id", "f1", *options)
    cli.wait_for_step(runner, "f1", "plan", "waiting")  # the plan awaits approval
    cli.write("go", "")  # only now does the other step fail, failing the run
    assert runner.wait(timeout=30) == 1
    refused = cli("approve", "f1")
    assert refused.returncode == 2
    assert "run f1 is failed" in refused.stderr
    assert "`podium retry f1 broken`" in refused.stderr
    steps = {s["id"]: s["status"] for s in cli.show("f1")["steps"]}
    assert not any(sid.startswith("plan.") for sid in steps)  # no child was adopted


async def test_a_stale_approval_becomes_signal_refused(tmp_path: Path) -> None:
    """Posted while the plan waited, read after the run was cancelled: refused, not applied."""
    from podium.runtime.engine import Engine

    shutil.copytree(EXAMPLES / "agents", tmp_path / "agents")
    workflow = {
        "name": "goal",
        "steps": [{"id": "plan", "kind": "plan", "goal": "g", "planner": "planner", "confirm": 1}],
    }
    db = tmp_path / "p.db"
    async with await Engine.open(
        db, agents_dir=tmp_path, default_model=f"scripted:{SCRIPT}"
    ) as engine:
        state = await engine.run(workflow, run_id="s1")
        assert state.awaits_person
        await engine.cancel("s1")
        state = await engine.wait("s1")
        assert state.status == "cancelled"
        await engine.store.post_signal("s1", "approve", {"step_id": "plan"})  # as if earlier
        state = await engine.resume("s1")
        state = await engine.wait("s1")
    assert state.status == "cancelled"
    async with await Engine.open(db, mode="control") as reader:
        kinds = [s.event.kind for s in await reader.store.read("s1")]
    assert kinds[-1] == "signal.refused"
    assert "approval.granted" not in kinds


# -- defect 2: a bad --edit file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "plan file missing.json does not exist; check the path"),
        ("dir", "is a directory; pass the plan as a .yaml or .json file"),
        ("steps: [\n", "invalid YAML"),
        ("[1, 2]", "holds a list; a plan is an object with a `steps` list"),
        ("", "invalid JSON"),
    ],
)
def test_a_bad_edit_file_is_one_line_and_exit_2(
    cli: Cli, content: str | None, message: str
) -> None:
    options = _project(cli)
    assert cli("plan", "Brief me", "--confirm", "--run-id", "e1", *options).returncode == 3
    name = "missing.json"
    if content == "dir":
        name = "adir"
        (cli.folder / name).mkdir()
    elif content is not None:
        name = "plan.yaml" if content.startswith("steps") else "plan.json"
        cli.write(name, content)
    result = cli("approve", "e1", "--edit", name, *options)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.show("e1")["status"] == "waiting"


# -- defect 9: read-only commands never create or change a store -------------------------------


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in Cli(cwd).env.items() if k != "PODIUM_CONFIG"}
    return subprocess.run(
        [*PODIUM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    "command", [["runs"], ["show", "r1"], ["events", "r1"], ["script", "r1"], ["prune"]]
)
def test_a_mistyped_db_is_refused_and_not_created(tmp_path: Path, command: list[str]) -> None:
    result = _run(tmp_path, *command, "--db", "typo.db")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no Podium store at typo.db" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_runs_without_a_store_here_says_no_runs_and_creates_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path, "runs")
    assert result.returncode == 0, result.stderr
    assert "no runs" in result.stdout
    assert list(tmp_path.iterdir()) == []
    shown = _run(tmp_path, "show", "r1")
    assert shown.returncode == 2
    assert "no run with id 'r1'" in shown.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["runs"], ["show", "r1"], ["run", "wf.yaml"]])
def test_another_applications_sqlite_file_is_refused_untouched(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "wf.yaml").write_text('name: w\nsteps:\n  - {id: a, kind: shell, run: ["true"]}\n')
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = _run(tmp_path, *command, "--db", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "another application's SQLite database (tables: notes)" in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "wf.yaml"]


# -- defect 12: a bogus or missing model is refused before any run exists ------------------------


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (["--model", "bogus"], "unknown model provider 'bogus'"),
        (["--model", "nope:x"], "unknown model provider 'nope'"),
        (["--model", "scripted:gone.yaml"], "step 'ask' (agent 'researcher'): scripted model"),
        (["--model", "openai:"], "names no model after 'openai'"),
        ([], "step 'ask' (agent 'researcher') has no model: give the agent a `model:`"),
    ],
)
def test_a_bad_or_missing_model_creates_no_run(cli: Cli, model: list[str], message: str) -> None:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    cli.write("asks.yaml", AGENT)
    cli.env.pop("PODIUM_MODEL", None)
    result = cli("run", "asks.yaml", "--agents", str(cli.folder), *model)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not cli.db.exists()  # refused before the store was opened: no file, no run


def test_a_plan_steps_planner_needs_a_model_too(cli: Cli) -> None:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    cli.env.pop("PODIUM_MODEL", None)
    result = cli("plan", "Brief me", "--agents", str(cli.folder), "--model", "scripted:gone.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "step 'plan' (agent 'planner'): scripted model" in result.stderr
    assert not cli.db.exists()  # refused before the store was opened: no file, no run


# -- defect 14 (part): a run leaves no empty folder under .podium/procs --------------------------


def test_a_finished_run_leaves_no_process_folder(cli: Cli) -> None:
    cli.write(
        "two.yaml",
        "name: two\nsteps:\n  - {id: a, kind: shell, run: [echo, a]}\n"
        "  - {id: b, kind: shell, run: [echo, b]}\n",
    )
    result = cli("run", "two.yaml", "--run-id", "r1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (cli.folder / ".podium" / "procs" / "r1").exists()


# -- deliverable 4: recovery in one command ------------------------------------------------------

BOTH_FAIL = """\
name: both
on_failure: collect
steps:
  - {id: a, kind: shell, run: [test, -e, flag]}
  - {id: b, kind: shell, run: [test, -e, flag]}
  - {id: c, kind: shell, run: [echo, c], needs: [a, b]}
"""

TWO_NAPS = """\
name: naps
steps:
  - id: one
    kind: shell
    shell: sh
    run: exec sleep 30  # sandboxed: it dies with the engine the test kills
  - id: two
    kind: shell
    shell: sh
    run: exec sleep 30
  - {id: after, kind: shell, run: [echo, after], needs: [one, two]}
"""


def test_retry_all_failed_retries_every_failed_step_and_what_waits(cli: Cli) -> None:
    cli.write("both.yaml", BOTH_FAIL)
    failed = cli("run", "both.yaml", "--run-id", "b1")
    assert failed.returncode == 1
    assert "retry every failed step with: podium retry b1 --all-failed" in failed.stdout
    cli.write("flag", "")
    retried = cli("retry", "b1", "--all-failed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "retry: a, b" in retried.stdout
    steps = {s["id"]: s["status"] for s in cli.show("b1")["steps"]}
    assert steps == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_interrupted_steps_are_recovered_with_the_one_command_the_message_names(cli: Cli) -> None:
    cli.write("naps.yaml", TWO_NAPS)
    runner = cli.start("run", "naps.yaml", "--run-id", "n1")
    cli.wait_for_step(runner, "n1", "one", "running")
    cli.wait_for_step(runner, "n1", "two", "running")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    resumed = cli("resume", "n1")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert "all 2 at once: podium retry n1 --all-interrupted" in resumed.stdout
    assert "(or podium skip n1 --all-interrupted)" in resumed.stdout
    skipped = cli("skip", "n1", "--all-interrupted")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    doc = cli.show("n1")
    assert {s["id"]: s["status"] for s in doc["steps"]} == {
        "one": "skipped",
        "two": "skipped",
        "after": "skipped",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["skip", "r1"],
        ["skip", "r1", "a", "--all-failed"],
        ["retry", "r1", "--all-failed", "--all-interrupted"],
    ],
)
def test_a_step_or_exactly_one_all_flag_is_required(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert "a STEP, --all-interrupted or --all-failed (exactly one)" in result.stderr


def test_nothing_to_recover_is_bad_input(cli: Cli) -> None:
    cli.write("two.yaml", "name: ok\nsteps:\n  - {id: a, kind: shell, run: [echo, a]}\n")
    assert cli("run", "two.yaml", "--run-id", "ok1").returncode == 0
    result = cli("retry", "ok1", "--all-interrupted")
    assert result.returncode == 2
    assert "run ok1 has no interrupted steps; nothing to retry (it is succeeded)" in result.stderr
