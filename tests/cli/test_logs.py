"""`podium logs`: what steps wrote, as stored, for one step or all, and `--follow` from another
process until the run or the step ends. Real processes, real shell steps, a SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from podium import views
from podium.core import events as ev
from podium.store.base import StoredEvent

from .conftest import Cli
from .test_cli import FAILING

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# `gate` waits for a file the test writes, so the test decides when it ends (no sleeps to race).
GATED = """\
name: gated
steps:
  - id: first
    kind: shell
    shell: sh
    run: echo first out; echo first err >&2
  - id: gate
    kind: shell
    shell: sh
    run: while [ ! -f go ]; do sleep 0.02; done; echo gate out
    needs: [first]
  - id: last
    kind: shell
    shell: sh
    run: while [ ! -f go2 ]; do sleep 0.02; done; echo last out
    needs: [gate]
"""


def test_all_steps_interleaved_with_a_prefix_stdout_stderr_and_errors(cli: Cli) -> None:
    cli.write("failing.yaml", FAILING)
    assert cli("run", "failing.yaml", "--run-id", "l1").returncode == 1
    lines = cli("logs", "l1").stdout.splitlines()
    assert "ok     │ fine" in lines
    assert "broken │ [error] attempt 1: exited with code 3: oops" in lines
    assert not any(line.startswith("never") for line in lines)


def test_one_step_without_a_prefix_and_as_json_lines(cli: Cli) -> None:
    cli.write("gated.yaml", GATED)
    (cli.folder / "go").touch()
    (cli.folder / "go2").touch()
    assert cli("run", "gated.yaml", "--run-id", "l2").returncode == 0
    assert cli("logs", "l2", "first").stdout.splitlines() == ["first out", "[stderr] first err"]
    entries = [json.loads(line) for line in cli("logs", "l2", "--json").stdout.splitlines()]
    assert [(e["step_id"], e["stream"], e["text"]) for e in entries] == [
        ("first", "stdout", "first out"),
        ("first", "stderr", "first err"),
        ("gate", "stdout", "gate out"),
        ("last", "stdout", "last out"),
    ]
    missing = cli("logs", "l2", "nope")
    assert missing.returncode == 2
    assert "has no step 'nope'" in missing.stderr


def test_follow_streams_from_another_process_until_the_run_ends(cli: Cli) -> None:
    cli.write("gated.yaml", GATED)
    (cli.folder / "go2").touch()
    runner = cli.start("run", "gated.yaml", "--run-id", "l3")
    cli.wait_for_step(runner, "l3", "gate", "running")
    follower = cli.start("logs", "l3", "--follow")
    assert follower.stdout is not None
    assert follower.stdout.readline() == "first │ first out\n"
    assert follower.stdout.readline() == "first │ [stderr] first err\n"
    (cli.folder / "go").touch()  # only now can the rest of the run happen
    out, err = follower.communicate(timeout=15)
    assert follower.returncode == 0, err
    assert out.splitlines() == ["gate  │ gate out", "last  │ last out"]
    runner.communicate(timeout=15)


def test_follow_of_one_step_ends_when_that_step_ends(cli: Cli) -> None:
    cli.write("gated.yaml", GATED)
    runner = cli.start("run", "gated.yaml", "--run-id", "l4")
    cli.wait_for_step(runner, "l4", "gate", "running")
    follower = cli.start("logs", "l4", "gate", "--follow")
    (cli.folder / "go").touch()
    out, err = follower.communicate(timeout=15)
    assert follower.returncode == 0, err
    assert out.splitlines() == ["gate out"]
    assert cli.show("l4")["status"] == "running"  # `last` still waits for go2
    (cli.folder / "go2").touch()
    runner.communicate(timeout=15)
    assert cli.show("l4")["status"] == "succeeded"


def test_an_agents_reply_text_tool_calls_and_progress_are_log_entries() -> None:
    said = ev.ModelCalled(at=T0, step_id="ask", model="m", reply={"content": "line 1\nline 2"})
    tool = ev.ToolCalled(at=T0, step_id="ask", tool="read_file", arguments={"path": "a"})
    progress = ev.StepProgress(at=T0, step_id="ask", message="half", fraction=0.5)
    entries = [
        e
        for seq, event in enumerate((said, tool, progress), 1)
        for e in views.log_entries(StoredEvent("r", seq, event))
    ]
    assert [(e["stream"], e["text"]) for e in entries] == [
        ("text", "line 1\nline 2"),
        ("tool", 'read_file({"path": "a"}) ok'),
        ("progress", "50% half"),
    ]
    started = ev.StepStarted(at=T0, step_id="ask", attempt=1)
    assert views.log_entries(StoredEvent("r", 4, started)) == []


# `talk` writes a line, then waits for a file the test writes before it writes the next.
TALKING = """\
name: talking
steps:
  - id: talk
    kind: shell
    shell: sh
    run: echo one; echo two >&2; while [ ! -f go ]; do sleep 0.02; done; echo three
"""


def test_follow_shows_a_running_shell_steps_lines_as_it_writes_them(cli: Cli) -> None:
    cli.write("talking.yaml", TALKING)
    runner = cli.start("run", "talking.yaml", "--run-id", "l9")
    cli.wait_for_step(runner, "l9", "talk", "running")
    follower = cli.start("logs", "l9", "talk", "--follow")
    assert follower.stdout is not None
    # Both lines arrive while the step is still running: they come from its log file.
    assert follower.stdout.readline() == "one\n"
    assert follower.stdout.readline() == "[stderr] two\n"
    (cli.folder / "go").touch()
    out, err = follower.communicate(timeout=15)
    assert follower.returncode == 0, err
    assert out.splitlines() == ["three"]
    runner.communicate(timeout=15)
    records = [json.loads(line) for line in cli("logs", "l9", "--json").stdout.splitlines()]
    assert [(r["stream"], r["text"], r["attempt"], r["seq"]) for r in records] == [
        ("stdout", "one", 1, None),
        ("stderr", "two", 1, None),
        ("stdout", "three", 1, None),
    ]


def test_without_the_log_file_logs_shows_what_the_store_kept(cli: Cli) -> None:
    cli.write("gated.yaml", GATED)
    (cli.folder / "go").touch()
    (cli.folder / "go2").touch()
    assert cli("run", "gated.yaml", "--run-id", "l8").returncode == 0
    for path in (cli.folder / ".podium" / "logs" / "l8").iterdir():
        path.unlink()  # as if the run had run on another machine
    assert cli("logs", "l8", "first").stdout.splitlines() == ["first out", "[stderr] first err"]
