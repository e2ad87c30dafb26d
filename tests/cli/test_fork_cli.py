"""`podium fork` as a real subprocess on a real SQLite file: the new run reuses the parent's
outputs upstream of the fork step (a counted shell step does not run again), `--json` gives the
new run, `show` says where it came from, bad requests exit 2 and create nothing."""

from __future__ import annotations

import json

from .conftest import Cli

FLOW = """\
name: forkable
inputs:
  tag: {type: string, default: one}
steps:
  - id: fetch
    kind: shell
    shell: sh
    run: echo fetch >> runs.log && echo fetched
  - id: build
    kind: shell
    shell: sh
    run: echo build >> runs.log && echo built-${{ inputs.tag }}
    needs: [fetch]
  - id: test
    kind: shell
    shell: sh
    run: echo test >> runs.log && echo "tested ${{ steps.build.output }}"
    needs: [build]
"""


def parent(cli: Cli) -> None:
    cli.write("flow.yaml", FLOW)
    result = cli("run", "flow.yaml", "--run-id", "p1")
    assert result.returncode == 0, result.stderr
    (cli.folder / "runs.log").unlink()


def test_fork_json_gives_the_new_run_and_reuses_what_is_upstream(cli: Cli) -> None:
    parent(cli)
    result = cli("fork", "p1", "--from", "build", "--input", "tag=two", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["run_id"] != "p1"
    assert doc["status"] == "succeeded"
    assert doc["forked_from"] == {"run_id": "p1", "step": "build", "reused": ["fetch"]}
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["test"]["output"] == "tested built-two"
    assert (cli.folder / "runs.log").read_text().split() == ["build", "test"]
    (cli.folder / "runs.log").unlink()
    again = cli("fork", "@latest", "--from", "test", "--json")  # RUN may be @latest or a prefix
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["forked_from"]["run_id"] == doc["run_id"]
    shown = cli("show", doc["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert "forked" in shown.stdout
    assert "from p1 at build (1 steps reused)" in shown.stdout
    assert (cli.folder / "runs.log").read_text().split() == ["test"]
    step = cli("show", doc["run_id"], "fetch")
    assert step.returncode == 0, step.stderr
    assert "from run p1 (this fork did not run it)" in step.stdout
    detail = json.loads(cli("show", doc["run_id"], "fetch", "--json").stdout)
    assert (detail["reused_from"], detail["output"]) == ("p1", "fetched")


def test_fork_errors_exit_2_with_one_line_and_create_nothing(cli: Cli) -> None:
    parent(cli)
    cases = [
        (("fork", "nope", "--from", "build"), "no run with id 'nope'"),
        (("fork", "p1", "--from", "biuld"), 'did you mean "build"?'),
        (("fork", "p1", "--from", "build", "--input", "colour=red"), "colour"),
        (("fork", "p1", "--from", "build", "--input", "tag"), "NAME=VALUE"),
    ]
    for args, said in cases:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert said in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    listed = cli("runs", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ["p1"]
