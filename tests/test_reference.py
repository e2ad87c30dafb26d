"""docs/reference.md is what `python -m podium.reference` writes from the models, and the
generator refuses fields or script keys it has no words for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from podium import reference
from podium.llm._script_file import parse_script
from podium.reference import _text
from podium.spec.model import STEP_TYPES, PlanStep, StepBase, Workflow
from podium.spec.plan import check_plan

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_the_reference_page_is_up_to_date() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/reference.md is out of date; run make reference"
    )


def test_python_dash_m_prints_the_page() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "podium.reference"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == reference.render()


def test_every_field_of_every_step_kind_is_listed() -> None:
    page = reference.render()
    for kind, model in STEP_TYPES.items():
        section = page.partition(f"## `{kind}` steps\n")[2].partition("\n## ")[0]
        for name in set(model.model_fields) - set(StepBase.model_fields) - {"kind"}:
            assert f"| `{name}` |" in section, (kind, name)
    every = page.partition("## Every step\n")[2].partition("\n## ")[0]
    assert all(f"| `{n}` |" in every for n in StepBase.model_fields)
    assert all(f"| `{n}` |" in page for n in Workflow.model_fields)
    for section in ("Plans", "Verdicts", "Scripted-model scripts", "Built-in tools", "Limits"):
        assert f"\n## {section}" in page
    assert "| `read_file` |" in page
    assert "| `delay_seconds` |" in page


def test_a_field_without_a_description_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = dict(_text.FIELDS)
    del fields["ShellStep.stdin"]
    monkeypatch.setattr(reference, "FIELDS", fields)
    with pytest.raises(reference.ReferenceError, match=r"ShellStep\.stdin has no description"):
        reference.render()


def test_a_description_of_no_field_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "FIELDS", {**_text.FIELDS, "ShellStep.gone": "x"})
    with pytest.raises(reference.ReferenceError, match=r"ShellStep\.gone"):
        reference.render()


def test_script_keys_follow_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {**_text.SCRIPT_KEYS, "usage": {"input_tokens": "x"}}
    monkeypatch.setattr(reference, "SCRIPT_KEYS", keys)
    with pytest.raises(reference.ReferenceError, match="script keys of usage differ"):
        reference.render()


def test_the_page_s_examples_are_valid() -> None:
    page = reference.render()
    script = page.partition("```yaml\n")[2].partition("```")[0]
    parsed = parse_script(yaml.safe_load(script), source="reference")
    assert set(parsed.agents) == {"researcher", "*"}
    plan = json.loads(page.partition("```json\n")[2].partition("```")[0])
    assert check_plan(plan, PlanStep(id="plan", goal="g"), agents=None) == []
