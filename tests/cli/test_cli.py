"""The real `podium` CLI in subprocesses, on real SQLite files: runs, exit codes, inspection,
crash and resume, cancellation from another process, retry and skip."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time
from datetime import datetime

import pytest

from .conftest import PODIUM, Cli, group_alive

GREETING = """\
name: greeting
inputs:
  who: {type: string}
  times: {type: integer, default: 1}
steps:
  - id: hello
    kind: shell
    run: echo hello ${{ inputs.who }}
  - id: save
    kind: file
    op: write
    path: greeting.txt
    content: "${{ steps.hello.output }} x${{ inputs.times }}"
    needs: [hello]
  - id: load
    kind: file
    op: read
    path: greeting.txt
    needs: [save]
"""

FAILING = """\
name: failing
steps:
  - id: ok
    kind: shell
    run: echo fine
  - id: broken
    kind: shell
    shell: sh
    run: echo oops >&2; exit 3
    needs: [ok]
  - id: never
    kind: shell
    run: echo unreachable
    needs: [broken]
"""

FLAKY = """\
name: flaky
steps:
  - id: flaky
    kind: shell
    shell: sh
    run: if [ -f marker ]; then echo recovered; else touch marker; exit 4; fi
  - id: after
    kind: shell
    run: echo after
    needs: [flaky]
"""

# `exec` keeps the shell's pid, which is the step's process-group id, in `nap.pid`. The step
# must still be running when the tests kill, cancel or interrupt it: 30 s is far longer than any.
LONG = """\
name: long
steps:
  - id: nap
    kind: shell
    shell: sh
    run: echo $$ > nap.pid; exec sleep 30
    sandbox: false  # so that $$ is a host process group the tests can check and clean up
  - id: after
    kind: shell
    run: echo after
    needs: [nap]
"""

INVALID = """\
name: broken
steps:
  - id: a
    kind: shell
    run: echo a
    needs: [ghost]
  - id: a
    kind: teleport
  - id: c
    kind: file
    op: read
"""


def run_id_of(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run "), stdout
    return first.removeprefix("run ")


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# ------------------------------------------------------------------------------ run and show


def test_run_succeeds_and_show_json_has_every_step(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    result = cli("run", "greeting.yaml", "--input", "who=world", "-i", "times=2", "--run-id", "r1")

    assert result.returncode == 0, result.stderr
    assert run_id_of(result.stdout) == "r1"
    assert "run r1 succeeded" in result.stdout
    doc = cli.show("r1")
    assert set(doc) == {
        "run_id",
        "workflow",
        "status",
        "wake_at",
        "error",
        "cancel_reason",
        "dead_reason",
        "recoveries",
        "forked_from",
        "created_at",
        "updated_at",
        "tokens",
        "cost_usd",
        "plans",
        "loops",
        "feedback",
        "approvals",
        "thread",
        "parent",
        "depth",
        "children",
        "steps",
    }
    assert (doc["tokens"], doc["cost_usd"]) == (0, 0)
    assert (doc["cancel_reason"], doc["forked_from"]) == (None, None)
    assert (doc["run_id"], doc["workflow"], doc["status"], doc["wake_at"], doc["error"]) == (
        "r1",
        "greeting",
        "succeeded",
        None,
        None,
    )
    steps = {s["id"]: s for s in doc["steps"]}
    assert [(s["id"], s["kind"]) for s in doc["steps"]] == [
        ("hello", "shell"),
        ("save", "file"),
        ("load", "file"),
    ]
    assert steps["hello"]["output"] == "hello world"
    assert steps["load"]["output"] == "hello world x2"
    assert (cli.folder / "greeting.txt").read_text() == "hello world x2"
    for step in doc["steps"]:
        assert (step["status"], step["attempts"]) == ("succeeded", 1)
        assert datetime.fromisoformat(step["finished_at"]) >= datetime.fromisoformat(
            step["started_at"]
        )
        assert step["truncated"] is False
        assert step["error"] is None


def test_run_plain_view_prints_one_line_per_transition(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    result = cli("run", "greeting.yaml", "--input", "who=you")

    lines = [line.split() for line in result.stdout.splitlines()[2:-1]]  # after run, workspace
    assert [line[1:3] for line in lines] == [
        ["hello", "running"],
        ["hello", "succeeded"],
        ["save", "running"],
        ["save", "succeeded"],
        ["load", "running"],
        ["load", "succeeded"],
    ]
    assert all(line[3].endswith("s") for line in lines if line[2] == "succeeded")


def test_run_json_prints_the_show_document_on_stdout(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    result = cli("run", "greeting.yaml", "--input", "who=json", "--json")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded"
    assert result.stderr.splitlines()[0] == f"run {doc['run_id']}"
    assert doc == cli.show(doc["run_id"])


def test_human_show_and_runs(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    cli.write("failing.yaml", FAILING)
    assert cli("run", "greeting.yaml", "-i", "who=a", "--run-id", "good").returncode == 0
    assert cli("run", "failing.yaml", "--run-id", "bad").returncode == 1

    shown = cli("show", "bad")
    assert shown.returncode == 0
    assert "failed" in shown.stdout
    assert "exited with code 3" in shown.stdout

    listed = cli("runs", "--json")
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("bad", "failed"),
        ("good", "succeeded"),
    ]
    only_failed = cli("runs", "--status", "failed")
    assert "bad" in only_failed.stdout
    assert "good" not in only_failed.stdout
    assert cli("runs", "--status", "nonsense").returncode == 2


# --------------------------------------------------------------------------------- failures


def test_failing_step_exits_1_with_its_error(cli: Cli) -> None:
    cli.write("failing.yaml", FAILING)
    result = cli("run", "failing.yaml", "--run-id", "f1")

    assert result.returncode == 1
    assert "run f1 failed" in result.stdout
    assert "podium retry f1 broken" in result.stdout
    doc = cli.show("f1")
    steps = {s["id"]: s for s in doc["steps"]}
    assert doc["status"] == "failed"
    assert "broken" in doc["error"]
    assert steps["broken"]["status"] == "failed"
    assert "code 3" in steps["broken"]["error"]
    assert "oops" in steps["broken"]["error"]
    assert steps["never"]["status"] in ("cancelled", "skipped")


def test_validate_lists_every_problem_and_exits_2(cli: Cli) -> None:
    cli.write("invalid.yaml", INVALID)
    cli.write("greeting.yaml", GREETING)

    bad = cli("validate", "invalid.yaml")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    for expected in ('steps[0].needs[0]: unknown step "ghost"', "steps[1].kind", "steps[1].id"):
        assert expected in bad.stderr
    assert len(bad.stderr.strip().splitlines()) >= 4  # the header, then one line per problem

    good = cli("validate", "greeting.yaml")
    assert (good.returncode, good.stdout.strip()) == (0, "ok: greeting (3 steps)")
    assert cli("run", "invalid.yaml").returncode == 2
    assert not cli.db.exists()


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        (["--input", "who"], "NAME=VALUE"),
        (["--input", "who=a", "--input", "nobody=x"], "nobody"),
        (["--input", "who=a", "--input", "times=many"], "times"),
        ([], "who"),
    ],
)
def test_bad_input_exits_2_before_touching_the_store(
    cli: Cli, inputs: list[str], fragment: str
) -> None:
    cli.write("greeting.yaml", GREETING)
    result = cli("run", "greeting.yaml", *inputs)

    assert result.returncode == 2
    assert_one_line_error(result.stderr, fragment)
    assert not cli.db.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["show", "nope"],
        ["events", "nope"],
        ["resume", "nope"],
        ["cancel", "nope"],
        ["retry", "nope", "step"],
        ["skip", "nope", "step"],
    ],
)
def test_unknown_run_exits_2(cli: Cli, command: list[str]) -> None:
    cli.write("ok.yaml", "name: ok\nsteps:\n  - {id: a, kind: shell, run: [echo, a]}\n")
    assert cli("run", "ok.yaml").returncode == 0  # a store to look in (a reader creates none)
    result = cli(*command)

    assert result.returncode == 2
    assert_one_line_error(result.stderr, "nope")


def test_unknown_step_and_invalid_transition_exit_2(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    assert cli("run", "greeting.yaml", "-i", "who=x", "--run-id", "done").returncode == 0

    assert_one_line_error(cli("retry", "done", "ghost").stderr, "ghost", "hello")
    skipped = cli("skip", "done", "hello")
    assert skipped.returncode == 2
    assert_one_line_error(skipped.stderr, "succeeded")
    cancelled = cli("cancel", "done")
    assert cancelled.returncode == 2
    assert_one_line_error(cancelled.stderr, "already succeeded")


def test_a_text_file_as_the_store_exits_2_with_one_line(cli: Cli) -> None:
    cli.db.write_text("these are my notes, not a database\n" * 20)
    cli.write("greeting.yaml", GREETING)

    for command in (["runs"], ["show", "r"], ["run", "greeting.yaml", "-i", "who=x"]):
        result = cli(*command)
        assert result.returncode == 2, command
        assert_one_line_error(result.stderr, str(cli.db))


# ----------------------------------------------------------------------------------- events


def test_events_json_is_one_object_per_line_with_contiguous_seq(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    cli("run", "greeting.yaml", "-i", "who=ev", "--run-id", "e1")

    result = cli("events", "e1", "--json")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["run_id"] == "e1" and datetime.fromisoformat(e["at"]) for e in events)
    assert events[0]["kind"] == "run.created"
    assert events[-1]["kind"] == "run.completed"
    assert events[-1]["outcome"] == "succeeded"
    hello = events[2]
    assert (hello["kind"], hello["step_id"], hello["output"]) == (
        "step.succeeded",
        "hello",
        "hello ev",
    )

    later = cli("events", "e1", "--json", "--after", "3")
    assert next(json.loads(line)["seq"] for line in later.stdout.splitlines()) == 4
    text = cli("events", "e1")
    assert len(text.stdout.splitlines()) == len(events)
    assert text.stdout.splitlines()[1].split()[2:4] == ["step.started", "hello"]


# The step runs until the test creates `go`: the test, not a timer, decides when it ends.
GATED = """\
name: gated
steps:
  - id: wait
    kind: shell
    shell: sh
    run: while [ ! -e go ]; do sleep 0.05; done
"""


def test_events_follow_streams_until_the_run_completes(cli: Cli) -> None:
    cli.write("gated.yaml", GATED)
    runner = cli.start("run", "gated.yaml", "--run-id", "s1")
    cli.wait_for_step(runner, "s1", "wait", "running")
    follower = cli.start("events", "s1", "--follow", "--json")
    assert follower.stdout is not None
    seen = []
    while "step.started" not in seen:  # a readiness line on the pipe: it is following
        line = follower.stdout.readline()
        assert line, f"events --follow ended early: {follower.communicate()}"
        seen.append(json.loads(line)["kind"])

    (cli.folder / "go").touch()
    rest, err = follower.communicate(timeout=15)

    assert follower.returncode == 0, err
    kinds = seen + [json.loads(line)["kind"] for line in rest.splitlines()]
    assert kinds[-1] == "run.completed"
    assert kinds.index("step.started") < kinds.index("step.succeeded")  # streamed as it ran
    assert runner.wait(timeout=15) == 0


# ------------------------------------------------------------------- crash, resume, control


def test_killed_run_parks_an_interrupted_step_until_skipped(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "k1")
    cli.wait_for_step(runner, "k1", "nap", "running")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)

    resumed = cli("resume", "k1")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert "podium retry k1 nap" in resumed.stdout
    assert "podium skip k1 nap" in resumed.stdout
    doc = cli.show("k1")
    assert doc["status"] == "waiting"
    assert {s["id"]: s["status"] for s in doc["steps"]} == {
        "nap": "interrupted",
        "after": "pending",
    }

    again = cli("resume", "k1")  # still parked: nothing re-runs the side effect
    assert again.returncode == 3
    skipped = cli("skip", "k1", "nap")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    doc = cli.show("k1")
    assert doc["status"] == "succeeded"
    assert doc["steps"][0]["status"] == "skipped"
    assert doc["steps"][0]["reason"] == "manual"


def test_cancel_stops_a_run_driven_by_another_process(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "c1")
    cli.wait_for_step(runner, "c1", "nap", "running")
    pgid = int((cli.folder / "nap.pid").read_text())
    assert group_alive(pgid)

    started = time.monotonic()
    cancel = cli("cancel", "c1", "--reason", "enough")
    assert cancel.returncode == 0, cancel.stderr
    assert "cancel requested" in cancel.stdout
    out, _ = runner.communicate(timeout=10)

    assert runner.returncode == 1
    assert time.monotonic() - started < 8
    assert "run c1 cancelled" in out
    assert not group_alive(pgid)
    doc = cli.show("c1")
    assert doc["status"] == "cancelled"
    assert {s["status"] for s in doc["steps"]} == {"cancelled"}


def test_cancel_of_a_parked_run_drives_it_to_its_end(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "c2")
    cli.wait_for_step(runner, "c2", "nap", "running")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)

    cancel = cli("cancel", "c2")
    assert cancel.returncode == 0, cancel.stderr
    assert "run c2 cancelled" in cancel.stdout
    assert cli.show("c2")["status"] == "cancelled"


def test_retry_after_a_failure_finishes_the_run(cli: Cli) -> None:
    cli.write("flaky.yaml", FLAKY)
    first = cli("run", "flaky.yaml", "--run-id", "t1")
    assert first.returncode == 1
    assert (cli.folder / "marker").exists()

    retried = cli("retry", "t1", "flaky")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "run t1 succeeded" in retried.stdout
    doc = cli.show("t1")
    assert doc["status"] == "succeeded"
    assert {s["id"]: s["output"] for s in doc["steps"]} == {"flaky": "recovered", "after": "after"}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_the_steps_and_says_how_to_resume(
    cli: Cli, signum: int, code: int
) -> None:
    cli.write("long.yaml", LONG)
    runner = cli.start("run", "long.yaml", "--run-id", "i1")
    cli.wait_for_step(runner, "i1", "nap", "running")
    pgid = int((cli.folder / "nap.pid").read_text())
    runner.send_signal(signum)
    _, err = runner.communicate(timeout=10)

    assert runner.returncode == code
    assert "podium resume i1" in err
    assert "Traceback" not in err
    assert not group_alive(pgid)


# ------------------------------------------------------------------------- store and terminal


def test_store_from_the_global_option_or_podium_db(cli: Cli) -> None:
    cli.write("greeting.yaml", GREETING)
    cli("run", "greeting.yaml", "-i", "who=g", "--run-id", "g1")
    base = [*PODIUM, "runs", "--json"]

    by_option = subprocess.run(
        [*PODIUM, "--db", str(cli.db), "runs", "--json"],
        cwd=cli.folder,
        env=cli.env,
        capture_output=True,
        text=True,
        check=True,
    )
    by_env = subprocess.run(
        base,
        cwd=cli.folder,
        env={**cli.env, "PODIUM_DB": str(cli.db)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["run_id"] for r in json.loads(by_option.stdout)] == ["g1"]
    assert by_env.stdout == by_option.stdout


def test_live_table_on_a_terminal_shows_at_most_40_rows(cli: Cli) -> None:
    steps = "\n".join(
        f"  - {{id: s{i:02d}, kind: file, op: write, path: f{i}.txt, content: x}}"
        for i in range(60)
    )
    cli.write("wide.yaml", f"name: wide\nsteps:\n{steps}\n")

    code, screen = run_in_terminal(cli.argv("run", "wide.yaml", "--run-id", "w1"), cli)

    assert code == 0
    assert "\x1b[" in screen  # it drew with colours and cursor moves, not plain lines
    assert "60 succeeded  (showing 40 of 60; 20 succeeded not shown)" in screen
    assert "run w1 succeeded" in screen


def run_in_terminal(argv: list[str], cli: Cli) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as stdout and stderr; return its exit code and output."""
    leader, follower = pty.openpty()
    env = {**cli.env, "COLUMNS": "120", "LINES": "60", "TERM": "xterm-256color"}
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    proc = subprocess.Popen(argv, cwd=cli.folder, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")
