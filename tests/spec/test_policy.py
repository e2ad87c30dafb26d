"""The approval policy as data: defaults, the merge of the project's and the workflow's (stricter
only; loosening refused with a message naming the rule and `[policy.approve]`), which steps each
rule holds, the project configuration's `[policy]` table, and plans with steps of other kinds
(checked like written steps, planner text kept as data, blocked agents refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.config import load_config
from podium.errors import SpecError
from podium.spec.model import FileStep, HttpStep, PlanStep, ShellStep
from podium.spec.plan import check_plan, children, normalised
from podium.spec.policy import DEFAULT_RULES, ApprovalRules, Policy, effective, recorded
from podium.spec.validate import validate_workflow


def _rules(**values: bool) -> Policy:
    return Policy(approve=ApprovalRules(**values))


def test_the_defaults_hold_what_a_planner_generated_only() -> None:
    policy = Policy()
    assert {name for name, on in DEFAULT_RULES.items() if on} == {
        "planned_shell",
        "planned_file_writes",
        "planned_http_writes",
        "planned_workflows",
        "destructive_tools",
        "untrusted",
    }
    shell = ShellStep(id="s", run="ls")
    assert policy.rule_for(shell, planned=True) == "planned_shell"
    assert policy.rule_for(shell, planned=False) is None
    get = HttpStep(id="g", url="http://x")
    post = HttpStep(id="p", url="http://x", method="post")
    assert policy.rule_for(get, planned=True) is None
    assert policy.rule_for(post, planned=True) == "planned_http_writes"
    read = FileStep(id="r", op="read", path="a")
    append = FileStep(id="a", op="append", path="a", content="x")
    assert policy.rule_for(read, planned=True) is None
    assert policy.rule_for(append, planned=True) == "planned_file_writes"
    assert policy.requires_tool_approval(destructive=True)
    assert not policy.requires_tool_approval(destructive=False)
    assert recorded(None) == Policy()  # a run recorded before policies folds with the defaults


def test_a_workflow_makes_the_policy_stricter() -> None:
    project = Policy(approve=ApprovalRules(planned_shell=False), block_agents=["Writer"])
    workflow = Policy(approve=ApprovalRules(shell=True), block_agents=["poet", "writer"])
    merged, problems = effective(project, workflow)
    assert problems == []
    assert merged.rule("shell")
    assert not merged.rule("planned_shell")
    assert merged.rule("planned_file_writes")
    assert merged.rule_for(ShellStep(id="s", run="ls"), planned=True) == "shell"
    assert merged.blocks("WRITER")
    assert merged.blocks("Poet")
    assert not merged.blocks("editor")
    again = Policy.model_validate(merged.record())
    assert again.record() == merged.record()  # what a run records reads back the same


@pytest.mark.parametrize("project", [None, _rules(planned_http_writes=True)])
def test_a_workflow_cannot_turn_off_what_the_project_or_default_turns_on(
    project: Policy | None,
) -> None:
    _, [problem] = effective(project, _rules(planned_http_writes=False))
    assert problem.path == "policy.approve.planned_http_writes"
    who = "the default" if project is None else "the project configuration"
    assert f"which {who} turns on" in problem.message
    assert "[policy.approve] planned_http_writes = false" in problem.message


def test_turning_off_a_rule_that_is_off_is_no_problem() -> None:
    merged, problems = effective(_rules(planned_shell=False), _rules(planned_shell=False))
    assert problems == []
    assert not merged.rule("planned_shell")


def test_the_project_configuration_reads_a_policy_table(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text(
        '[policy]\nblock_agents = ["intern"]\n[policy.approve]\nplanned_shell = false\n'
    )
    config = load_config(tmp_path)
    assert not config.policy.rule("planned_shell")
    assert config.policy.blocks("Intern")


def test_a_bad_policy_table_is_reported_by_key_path(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text("[policy.approve]\nplaned_shell = false\n")
    with pytest.raises(SpecError) as caught:
        load_config(tmp_path)
    text = str(caught.value)
    assert "policy.approve.planed_shell" in text
    assert "did you mean 'planned_shell'" in text


STEP = PlanStep(id="p", goal="g", kinds=["agent", "shell", "http", "file"])


def test_a_plan_may_hold_steps_of_the_kinds_its_plan_step_allows() -> None:
    plan = {
        "steps": [
            {"id": "ls", "kind": "shell", "run": "echo ${{ inputs.secret }}", "agent": None},
            {"id": "get", "kind": "http", "method": "GET", "url": "http://x", "needs": ["ls"]},
            {"id": "w", "kind": "file", "op": "write", "path": "a.txt", "content": "${{ x }}"},
            {"id": "t", "kind": "agent", "agent": "writer", "task": "say ${{ run.id }}"},
        ]
    }
    assert check_plan(plan, STEP, agents=None) == []
    made = {c.id: c for c in children(normalised(plan), STEP, [])}
    shell, get, write, agent = made["p.ls"], made["p.get"], made["p.w"], made["p.t"]
    assert isinstance(shell, ShellStep)
    assert shell.run == "echo $${{ inputs.secret }}"
    assert isinstance(get, HttpStep)
    assert get.needs == ["p.ls"]
    assert isinstance(write, FileStep)
    assert write.content == "$${{ x }}"
    assert getattr(agent, "prompt", None) == "say $${{ run.id }}"
    assert all(c.on_failure == "collect" for c in made.values())


def test_bad_items_of_other_kinds_are_problems_with_paths() -> None:
    only_agents = PlanStep(id="p", goal="g")
    plan = {
        "steps": [
            {"id": "a", "kind": "shell", "run": "ls"},
            {"id": "b", "kind": "http", "method": "FETCH", "url": "http://x"},
            {"id": "c", "kind": "file", "op": "write", "path": "x"},
            {"id": "d", "kind": "shell", "run": "ls", "task": "also"},
            {"id": "e", "kind": "agent", "agent": "Intern", "task": "t"},
        ]
    }
    found = {str(p) for p in check_plan(plan, only_agents, agents=None)}
    assert "steps[0].kind: kind 'shell' is not allowed here; use agent" in found
    found = {p.path: p.message for p in check_plan(plan, STEP, agents=None, policy=_blocked())}
    assert "steps[1].method" in found
    assert "needs content" in found["steps[2]"]
    assert found["steps[3].task"] == "a shell step takes no task; its fields are run"
    assert "is blocked by the policy" in found["steps[4].agent"]


def _blocked() -> Policy:
    return Policy(block_agents=["intern"])


def test_a_misspelt_policy_key_in_a_workflow_says_what_was_meant() -> None:
    doc = {
        "name": "w",
        "policy": {"approve": {"planed_shell": True}, "block_agent": ["x"]},
        "steps": [{"id": "a", "kind": "shell", "run": "true"}],
    }
    with pytest.raises(SpecError) as caught:
        validate_workflow(doc)
    found = {p.path: p.message for p in caught.value.problems}
    assert 'did you mean "planned_shell"' in found["policy.approve.planed_shell"]
    assert 'did you mean "block_agents"' in found["policy.block_agent"]
