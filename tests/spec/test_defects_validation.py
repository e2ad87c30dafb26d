"""Issue 8, defects 6 and 15: one schema error no longer hides the document's other problems,
pattern errors read as rules with examples instead of regular expressions, huge integers and NUL
bytes are clear problems, and a document with thousands of problems prints a capped listing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podium.agents import AgentCatalog
from podium.errors import InputError, SpecError, UsageError
from podium.spec.load import load_document, read_document
from podium.spec.validate import coerce_inputs, validate_workflow


def _problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_workflow(doc)
    return {p.path: p.message for p in info.value.problems}


def _shell(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "echo hi", **fields}


def test_a_schema_error_does_not_hide_that_steps_needs_and_templates() -> None:
    bad = _shell("c", bogus=1, needs=["nope"], run="echo ${{ steps.zzz.output }}")
    found = _problems({"name": "w", "steps": [_shell("a"), _shell("b"), bad]})
    assert found["steps[2].bogus"].startswith('unknown field "bogus"')
    assert found["steps[2].needs[0]"] == 'unknown step "nope"'
    assert found["steps[2].run"] == 'template references unknown step "zzz"'


def test_a_bad_field_is_left_out_and_the_rest_of_the_step_still_checked() -> None:
    bad = _shell("b", timeout="soon", needs=["a", "a"])
    found = _problems({"name": "w", "steps": [_shell("a"), bad]})
    assert "steps[1].timeout" in found
    assert found["steps[1].needs[1]"].startswith('"a" is listed twice')


def test_model_strings_get_a_rule_with_examples_not_a_regular_expression() -> None:
    agent = {"kind": "agent", "agent": "x", "prompt": "hi"}
    steps = [
        {"id": "a", **agent, "model": "openai: gpt 4", "options": {"provider": "Open AI"}},
        {"id": "b", **agent, "model": "gpt4"},
    ]
    found = _problems({"name": "w", "steps": steps})
    assert all("pattern" not in message and "^" not in message for message in found.values())
    assert "openai:gpt-4o-mini" in found["steps[0].model"]
    assert "lowercase letters" in found["steps[0].options.provider"]
    assert found["steps[1].model"].startswith("model 'gpt4' names no provider")
    assert "anthropic:" in found["steps[1].model"]


@pytest.mark.parametrize("source", ["w.yaml", "w.json"])
def test_an_integer_of_5000_digits_is_a_problem_not_a_traceback(source: str) -> None:
    digits = "9" * 5000
    if source == "w.json":
        text = json.dumps({"name": "w", "steps": [_shell("a", timeout=1)]})
        text = text.replace('"timeout": 1', f'"timeout": {digits}')
        where = "steps[0].timeout"
    else:
        text = f"name: w\nsteps:\n- id: a\n  kind: shell\n  run: echo\n  timeout: {digits}\n"
        where = "line 6"
    with pytest.raises(SpecError) as info:
        load_document(text, source=source)
    (problem,) = info.value.problems
    assert problem.path == where
    assert problem.message.startswith("an integer of 5,000 digits; numbers may have at most")


def test_a_nul_byte_in_a_path_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="contains a NUL byte"):
        read_document("a\0b.yaml")
    steps = [
        {"id": "a", "kind": "file", "op": "read", "path": "a\0b"},
        _shell("b", cwd="x\0y"),
        _shell("c", run=["echo", "a\0"], env={"K": "v\0"}),
    ]
    found = _problems({"name": "w", "steps": steps})
    for where in ("steps[0].path", "steps[1].cwd", "steps[2].run", "steps[2].env"):
        assert found[where].startswith("contains a NUL character"), where


def test_thousands_of_problems_print_a_capped_summarised_listing(tmp_path: Path) -> None:
    steps = [_shell(f"s{i}", **{f"bogus{i}": "v" * 250}, needs=[f"n{i}"]) for i in range(1500)]
    steps[0]["needs"] = ["x" * 20_000]
    file = tmp_path / "many.json"
    file.write_text(json.dumps({"name": "w", "steps": steps}))
    assert file.stat().st_size > 500_000
    result = subprocess.run(
        [sys.executable, "-m", "podium.cli.app", "validate", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert len(result.stderr) < 30_000
    assert "3,000 problems in workflow" in result.stderr
    assert "… and 2,950 more problems (1,475 unknown field, 1,475 unknown step)" in result.stderr
    assert max(len(line) for line in result.stderr.splitlines()) <= 310


def test_an_input_of_5000_digits_is_a_clear_input_error() -> None:
    inputs = {"n": {"type": "integer"}, "a": {"type": "array", "required": False}}
    workflow = validate_workflow({"name": "w", "inputs": inputs, "steps": [_shell("a")]})
    digits = "9" * 5000
    for given in ({"n": digits}, {"n": "1", "a": f"[{digits}]"}):
        with pytest.raises(InputError, match="an integer of 5,000 digits"):
            coerce_inputs(workflow, given)


def test_pattern_errors_in_agent_files_read_as_rules(tmp_path: Path) -> None:
    bad = '---\nname: bad\nprovider: "Open AI"\ntool_choice: "a b"\n---\nHi.\n'
    (tmp_path / "bad.md").write_text(bad)
    with pytest.raises(SpecError) as info:
        AgentCatalog.load(None, None, folder=tmp_path)
    messages = [p.message for p in info.value.problems]
    assert all("pattern" not in message for message in messages), messages
    assert any("lowercase letters" in message for message in messages)
