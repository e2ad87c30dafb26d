"""`podium show RUN STEP`: one step in full, through real processes on a SQLite file, and the step
detail document built from real events (tool calls, model calls, resumed attempts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.spec.model import Workflow
from podium.stepviews import step_detail_document
from podium.store.base import StoredEvent

from .conftest import Cli
from .test_planning_cli import _project

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

RETRIED = """\
name: retried
inputs:
  who: {type: string}
steps:
  - id: greet
    kind: shell
    shell: sh
    run: echo hello ${{ inputs.who }}; echo careful >&2
  - id: flaky
    kind: shell
    shell: sh
    retry: {max_attempts: 2, initial_delay_seconds: 0}
    run: if [ -f marker ]; then echo recovered; else touch marker; echo nope >&2; exit 4; fi
    needs: [greet]
"""


def _show_step(cli: Cli, *args: str) -> dict[str, object]:
    result = cli("show", *args, "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_a_shell_step_in_full_its_rendered_input_every_attempt_and_stderr(cli: Cli) -> None:
    cli.write("retried.yaml", RETRIED)
    assert cli("run", "retried.yaml", "-i", "who=ada", "--run-id", "s1").returncode == 0

    greet = _show_step(cli, "s1", "greet")
    assert greet["input"] == {"run": "echo hello ada; echo careful >&2"}
    assert greet["output"] == "hello ada"
    assert greet["meta"] == {"exit_code": 0, "stderr_tail": "careful\n"}

    flaky = _show_step(cli, "s1", "flaky")
    tries = flaky["tries"]
    assert isinstance(tries, list)
    assert [(t["attempt"], t["outcome"]) for t in tries] == [(1, "retrying"), (2, "succeeded")]
    assert "exited with code 4: nope" in tries[0]["error"]
    assert all(t["duration_seconds"] is not None for t in tries)

    text = cli("show", "s1", "flaky").stdout
    assert "input (as rendered)" in text
    assert "retrying" in text
    assert "exited with code 4: nope" in text
    assert "recovered" in text


def test_a_long_output_is_shown_whole_and_a_capped_one_says_so(cli: Cli) -> None:
    lines = "\n".join(f"line {n:04d} " + "x" * 60 for n in range(200))
    cli.write("long.txt", lines)
    cli.write(
        "big.yaml",
        "name: big\nsteps:\n  - {id: cat, kind: shell, run: cat long.txt}\n",
    )
    assert cli("run", "big.yaml", "--run-id", "b1").returncode == 0
    assert "line 0199" not in cli("show", "b1").stdout  # the run's table shortens it
    text = cli("show", "b1", "cat").stdout
    assert "line 0000" in text
    assert "line 0199" in text
    assert "capped" not in text


def test_a_capped_output_says_it_was_capped(cli: Cli) -> None:
    cli.write("long.txt", "y" * 5000)
    steps = "steps:\n  - {id: cat, kind: shell, run: cat long.txt}\n"
    cli.write("capped.yaml", "name: capped\noutput_limit_bytes: 1024\n" + steps)
    assert cli("run", "capped.yaml", "--run-id", "c1").returncode == 0
    assert _show_step(cli, "c1", "cat")["truncated"] is True
    assert "capped when stored" in cli("show", "c1", "cat").stdout


def test_plan_children_and_their_model_calls(cli: Cli) -> None:
    options = _project(cli)
    result = cli("plan", "Brief me", "--aggregator", "writer", "--run-id", "p1", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    child = _show_step(cli, "p1", "plan.durability")
    assert child["parent"] == "plan"
    assert child["input"] == {"prompt": "List what makes a workflow engine durable."}
    calls = child["model_calls"]
    assert isinstance(calls, list)
    assert len(calls) == 1
    assert calls[0]["reply"]["content"] == child["output"]
    assert calls[0]["input_tokens"] > 0
    text = cli("show", "p1", "plan.durability").stdout
    assert "model calls" in text
    assert "plan      plan" in text


def test_an_unknown_step_or_timeline_with_a_step_is_a_one_line_error(cli: Cli) -> None:
    cli.write("retried.yaml", RETRIED)
    cli("run", "retried.yaml", "-i", "who=ada", "--run-id", "s2")
    missing = cli("show", "s2", "nope")
    assert missing.returncode == 2
    assert "has no step 'nope'" in missing.stderr
    assert "greet" in missing.stderr
    both = cli("show", "s2", "greet", "--timeline")
    assert both.returncode == 2
    assert "--timeline" in both.stderr


# ---------------------------------------------------------------------- from events, no engine


def _agent_events() -> list[ev.Event]:
    at = [T0 + timedelta(seconds=n) for n in range(10)]
    return [
        ev.StepStarted(at=at[0], step_id="ask", attempt=1),
        ev.ToolStarted(
            at=at[1], step_id="ask", call_id="c1", tool="read_file", arguments={"path": "a"}
        ),
        ev.ToolCalled(
            at=at[2], step_id="ask", tool="read_file", call_id="c1", result="AAA", latency_seconds=1
        ),
        ev.ModelCalled(
            at=at[3],
            step_id="ask",
            model="scripted:x",
            input_tokens=10,
            output_tokens=5,
            turn=1,
            reply={"content": "", "tool_calls": [{"id": "c2", "name": "http_get"}]},
        ),
        ev.ToolStarted(at=at[4], step_id="ask", call_id="c2", tool="http_get"),
        ev.RunResumed(at=at[5], requeued=["ask"]),
        ev.StepStarted(at=at[6], step_id="ask", attempt=1),
        ev.ToolCalled(
            at=at[7], step_id="ask", tool="http_get", ok=False, error="refused", call_id="c2"
        ),
        ev.StepSucceeded(at=at[8], step_id="ask", output="done"),
    ]


def _agent_state_and_log() -> tuple[object, list[StoredEvent]]:
    doc = {"name": "w", "steps": [{"id": "ask", "kind": "agent", "agent": "a", "prompt": "hi"}]}
    created = ev.RunCreated(at=T0, run_id="r", workflow=doc, workspace="/tmp")
    state = new_state(created, Workflow.model_validate(doc))
    log = [StoredEvent("r", 1, created)]
    for seq, event in enumerate(_agent_events(), 2):
        apply(state, event)
        log.append(StoredEvent("r", seq, event))
    return state, log


def test_tool_calls_pair_start_and_result_across_a_resume() -> None:
    state, log = _agent_state_and_log()
    doc = step_detail_document(state, "ask", log)  # type: ignore[arg-type]
    assert [(t["outcome"], t["attempt"]) for t in doc["tries"]] == [
        ("requeued", 1),
        ("succeeded", 1),
    ]
    first, second = doc["tool_calls"]
    assert (first["tool"], first["arguments"], first["result"], first["ok"]) == (
        "read_file",
        {"path": "a"},
        "AAA",
        True,
    )
    assert first["duration_seconds"] == 1
    assert (second["tool"], second["ok"], second["error"]) == ("http_get", False, "refused")
    assert second["started_at"] == (T0 + timedelta(seconds=4)).isoformat()
    assert doc["model_calls"][0]["reply"]["tool_calls"][0]["name"] == "http_get"
    assert doc["input"] == {"prompt": "hi"}


SANDBOXED_AND_NOT = """\
name: mixed
steps:
  - {id: boxed, kind: shell, shell: sh, run: 'echo $$'}
  - {id: open, kind: shell, shell: sh, run: 'echo $$', sandbox: false}
  - {id: broken, kind: shell, run: 'false', sandbox: false, needs: [boxed, open]}
"""


def test_an_opted_out_step_says_sandbox_off_and_a_default_one_runs_sandboxed(cli: Cli) -> None:
    cli.write("mixed.yaml", SANDBOXED_AND_NOT)
    result = cli("run", "mixed.yaml", "--run-id", "m1")
    assert result.returncode == 1, result.stdout + result.stderr  # `broken` fails

    boxed = _show_step(cli, "m1", "boxed")
    assert int(str(boxed["output"])) <= 3  # its own PID namespace: the default is the sandbox
    assert boxed["meta"] == {"exit_code": 0}
    assert boxed["sandbox"] == "on"
    assert "sandbox: off" not in cli("show", "m1", "boxed").stdout

    opened = _show_step(cli, "m1", "open")
    assert int(str(opened["output"])) > 3  # a host pid: it ran with the engine's rights
    assert opened["meta"] == {"exit_code": 0, "sandbox": False}
    assert opened["sandbox"] == "off"
    off = "sandbox: off (the engine's environment, network and files)"
    assert off in cli("show", "m1", "open").stdout
    broken = _show_step(cli, "m1", "broken")  # failed: no meta, the step's spec says it
    assert (broken["status"], broken["sandbox"]) == ("failed", "off")
    assert off in cli("show", "m1", "broken").stdout
