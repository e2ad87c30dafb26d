"""`podium approvals`, `approve` and `reject` of steps held by `approval:`, as real processes:
`run` exits 3 while parked and says what to run next; every bad request exits 2 with one line
and posts nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import Cli
from .test_cli import assert_one_line_error

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approval.yaml"

WORKFLOW = """
name: gated
steps:
  - id: build
    kind: shell
    shell: sh
    run: echo built >> build.ran
  - id: ship
    kind: shell
    shell: sh
    needs: [build]
    approval: required
    env: {TARGET: prod}
    run: echo "shipped to $TARGET" >> ship.ran
  - id: tell
    kind: shell
    shell: sh
    needs: [ship]
    run: echo told >> tell.ran
"""


def _gated(cli: Cli, run_id: str) -> None:
    (cli.folder / "gated.yaml").write_text(WORKFLOW)
    parked = cli("run", "gated.yaml", "--run-id", run_id)
    assert parked.returncode == 3, parked.stdout + parked.stderr
    assert f"podium approve {run_id} ship" in parked.stdout
    assert f"podium reject {run_id} ship --reason TEXT" in parked.stdout


def _lines(cli: Cli, name: str) -> list[str]:
    path = cli.folder / f"{name}.ran"
    return path.read_text().splitlines() if path.exists() else []


def _signals(cli: Cli, run_id: str) -> list[str]:
    events = cli("events", run_id, "--json")
    return [json.loads(line)["kind"] for line in events.stdout.splitlines()]


def test_run_parks_lists_and_approves_with_a_set(cli: Cli) -> None:
    _gated(cli, "g1")
    listed = cli("approvals")
    assert listed.returncode == 0, listed.stderr
    assert "g1  ship  since" in listed.stdout
    assert '"TARGET": "prod"' in listed.stdout
    doc = json.loads(cli("approvals", "g1", "--json").stdout)
    assert [(d["run_id"], d["step_id"], d["subject"]) for d in doc] == [("g1", "ship", "step")]
    assert cli.show("g1")["approvals"][0]["input"]["env"] == {"TARGET": "prod"}

    approved = cli("approve", "g1", "--set", "env.TARGET=staging")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert _lines(cli, "ship") == ["shipped to staging"]
    assert (_lines(cli, "build"), _lines(cli, "tell")) == (["built"], ["told"])
    assert "approval.edited" in _signals(cli, "g1")
    assert "nothing in any live run waits" in cli("approvals").stdout


def test_reject_fails_the_step_and_what_needs_it_never_runs(cli: Cli) -> None:
    _gated(cli, "g2")
    rejected = cli("reject", "g2", "ship", "--reason", "freeze")
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    doc = cli.show("g2")
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["ship"]["error"] == "rejected: freeze"
    assert steps["tell"]["status"] == "cancelled"  # as for any failure under fail_fast
    assert (_lines(cli, "ship"), _lines(cli, "tell")) == ([], [])


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (["approve", "g3", "build"], "step build is not awaiting approval (it is succeeded)"),
        (["approve", "g3", "ghost"], "ghost"),
        (["approve", "g3", "ship", "--set", "retry=0"], "the edited step ship is not valid"),
        (["approve", "g3", "ship", "--set", "needs=[]"], "cannot change needs"),
        (["approve", "g3", "ship", "--set", "oops"], "write KEY=VALUE"),
        (["approve", "g3", "ship", "--set", "run.x=1"], "field run is not a mapping"),
        (["approve", "g3", "ship", "--edit", "e.json", "--set", "a=1"], "not both"),
        (["approve", "nope", "ship"], "nope"),
    ],
)
def test_bad_decisions_exit_2_and_post_nothing(cli: Cli, command: list[str], fragment: str) -> None:
    _gated(cli, "g3")
    before = _signals(cli, "g3")
    result = cli(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_line_error(result.stderr, fragment)
    assert _signals(cli, "g3") == before
    assert cli.show("g3")["status"] == "waiting"


def test_deciding_twice_or_on_a_pruned_run_is_refused(cli: Cli) -> None:
    _gated(cli, "g4")
    assert cli("approve", "g4", "ship").returncode == 0
    again = cli("approve", "g4", "ship")
    assert again.returncode == 2
    assert_one_line_error(again.stderr, "step ship is not awaiting approval (it is succeeded)")
    assert cli("reject", "g4", "ship").returncode == 2
    pruned = cli("prune", "--older-than", "0s")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    gone = cli("approve", "g4", "ship")
    assert gone.returncode == 2
    assert_one_line_error(gone.stderr, "g4")


def test_the_example_workflow_runs_through_its_approvals(cli: Cli) -> None:
    shutil.copy(EXAMPLE, cli.folder / "approval.yaml")
    parked = cli("run", "approval.yaml", "--run-id", "ex")
    assert parked.returncode == 3, parked.stdout + parked.stderr
    listed = json.loads(cli("approvals", "--json").stdout)
    assert [d["step_id"] for d in listed] == ["release_app", "release_docs", "cleanup"]
    assert cli("approve", "ex", "release_docs").returncode == 3  # still waiting on the others
    assert cli("approve", "ex", "release_app", "--set", "env.CHANNEL=beta").returncode == 3
    done = cli("reject", "ex", "cleanup", "--reason", "keep it")
    assert done.returncode == 1, done.stdout + done.stderr
    releases = (cli.folder / "releases.txt").read_text().splitlines()
    assert sorted(releases) == ["released app 1.0 to beta", "released docs 1.0"]
    assert (cli.folder / "build.txt").exists()  # cleanup never ran


HUMAN = """
name: asks
steps:
  - id: pick
    kind: human
    prompt: "Which one?"
    input: {choice: [blue, green]}
  - id: days
    kind: human
    prompt: "How long?"
    input: {type: object, properties: {days: {type: integer}}, required: [days]}
  - id: use
    kind: shell
    needs: [pick, days]
    run: echo ${{ steps.pick.output }} ${{ steps.days.output.days }}
"""


def test_answer_a_human_step_from_the_cli(cli: Cli) -> None:
    (cli.folder / "asks.yaml").write_text(HUMAN)
    parked = cli("run", "asks.yaml", "--run-id", "h1")
    assert parked.returncode == 3, parked.stdout + parked.stderr
    assert "step pick asks: Which one?" in parked.stdout
    assert "podium answer h1 pick VALUE" in parked.stdout
    assert "h1  days  since" in cli("approvals").stdout
    before = _signals(cli, "h1")
    for bad, fragment in [
        (["pick", "red"], '"red" is not one of the choices: "blue", "green"'),
        (["days", '{"days": "x"}'], "days: 'x' is not of type 'integer'"),
        (["use", "x"], "step use is not awaiting approval"),
    ]:
        result = cli("answer", "h1", *bad)
        assert result.returncode == 2, result.stdout + result.stderr
        assert_one_line_error(result.stderr, fragment)
    assert _signals(cli, "h1") == before
    assert cli("answer", "h1", "pick", "green").returncode == 3
    done = cli("answer", "h1", "days", '{"days": 4}')
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {s["id"]: s for s in cli.show("h1")["steps"]}
    assert steps["use"]["output"].strip() == "green 4"
