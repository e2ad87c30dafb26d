"""Approval policy (SPEC F8): which steps a person must approve before they start, which tools
need a person before each call, and which agents may not be used at all.

A policy is written in the project configuration (`[policy]`, the baseline) and in a workflow
(`policy:`, which may only make it stricter). `effective` merges the two; the result is what a
run records on `run.created`, so every process and every replay decides the same. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podium.errors import Problem
from podium.spec.files import FilePolicy, tightened_files
from podium.spec.network import NetworkPolicy, union
from podium.spec.sandbox import SandboxPolicy, tightened

# rule -> its default: what a planner generated is held for a person unless the project says not
DEFAULT_RULES: dict[str, bool] = {
    "planned_shell": True,
    "planned_file_writes": True,
    "planned_http_writes": True,
    "planned_workflows": True,
    "destructive_tools": True,
    "untrusted": True,  # untrusted text spliced into a command, url host or path
    "shell": False,
    "file_writes": False,
    "http_writes": False,
    "workflows": False,
}
_READS = frozenset({"GET", "HEAD"})
PROJECT_TABLE = "[policy.approve]"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalRules(_Frozen):
    """Each rule on (true) or off (false); unset takes the default (`DEFAULT_RULES`)."""

    planned_shell: bool | None = None
    planned_file_writes: bool | None = None
    planned_http_writes: bool | None = None
    planned_workflows: bool | None = None
    destructive_tools: bool | None = None
    untrusted: bool | None = None
    shell: bool | None = None
    file_writes: bool | None = None
    http_writes: bool | None = None
    workflows: bool | None = None

    def value(self, rule: str) -> bool:
        set_to: bool | None = getattr(self, rule)
        return DEFAULT_RULES[rule] if set_to is None else set_to


class Policy(_Frozen):
    """`approve` rules, `block_agents` (agent names, matched case-insensitively) and the shell
    `sandbox` (spec/sandbox.py)."""

    approve: ApprovalRules = Field(default_factory=ApprovalRules)
    block_agents: list[str] = Field(default_factory=list)
    sandbox: SandboxPolicy = Field(default_factory=SandboxPolicy)
    network: NetworkPolicy = Field(default_factory=NetworkPolicy)  # SSRF guard allow-list
    files: FilePolicy = Field(default_factory=FilePolicy)  # Podium's own state off limits

    @field_validator("block_agents")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip():
                raise ValueError("an agent name in block_agents is empty; remove it")
        return value

    def rule(self, name: str) -> bool:
        return self.approve.value(name)

    def blocks(self, agent: str) -> bool:
        """Whether `agent` may not be used (asked, planned, routed to or fallen back on)."""
        folded = agent.casefold()
        return any(name.casefold() == folded for name in self.block_agents)

    def rule_for(self, step: object, *, planned: bool) -> str | None:
        """The rule that holds `step` for a person before it starts (planner-generated rules
        first: they say more), or None. Steps are matched by their `kind` string and fields."""
        family = _family(step)
        if family is None:
            return None
        for name in ([f"planned_{family}"] if planned else []) + [family]:
            if self.rule(name):
                return name
        return None

    def requires_tool_approval(self, *, destructive: bool) -> bool:
        """Whether a tool call must wait for a person: a tool marked destructive, while the
        `destructive_tools` rule is on."""
        return destructive and self.rule("destructive_tools")

    def record(self) -> dict[str, Any]:
        """What a run records: every rule resolved, the blocked agents."""
        return {
            "approve": {name: self.rule(name) for name in DEFAULT_RULES},
            "block_agents": list(self.block_agents),
            "sandbox": self.sandbox.record(),
            "network": self.network.record(),
            "files": self.files.record(),
        }


def _family(step: object) -> str | None:
    """The rule family a step belongs to: shell, file_writes, http_writes, workflows."""
    kind = getattr(step, "kind", None)
    if kind == "shell":
        return "shell"
    if kind == "file" and getattr(step, "op", None) in ("write", "append"):
        return "file_writes"
    if kind == "http" and str(getattr(step, "method", "GET")).upper() not in _READS:
        return "http_writes"
    if kind == "workflow":
        return "workflows"
    return None


def effective(project: Policy | None, workflow: Policy | None) -> tuple[Policy, list[Problem]]:
    """The project's policy made stricter by the workflow's, and a problem (at
    `policy.approve.<rule>`) for each rule the workflow tries to turn off that the project (or
    the default) turns on: only the project configuration may loosen a rule."""
    base = project or Policy()
    if workflow is None:
        return _resolved(base, base.block_agents), []
    sandbox, problems = tightened(base.sandbox, workflow.sandbox)
    rules: dict[str, bool] = {}
    for name in DEFAULT_RULES:
        before, asked = base.rule(name), getattr(workflow.approve, name)
        if asked is False and before:
            set_by_project = getattr(base.approve, name) is not None
            where = "the project configuration" if set_by_project else "the default"
            problems.append(
                Problem(
                    f"policy.approve.{name}",
                    f"a workflow cannot turn off rule {name}, which {where} turns on; turn it "
                    f"off in the project configuration ({PROJECT_TABLE} {name} = false)",
                )
            )
        rules[name] = before or bool(asked)
    blocked = list(dict.fromkeys([*base.block_agents, *workflow.block_agents]))
    network = union(base.network, workflow.network)
    files, file_problems = tightened_files(base.files, workflow.files)
    problems += file_problems
    resolved = ApprovalRules(**rules)
    return (
        Policy(
            approve=resolved,
            block_agents=blocked,
            sandbox=sandbox,
            network=network,
            files=files,
        ),
        problems,
    )


def _resolved(policy: Policy, blocked: Iterable[str]) -> Policy:
    rules = {name: policy.rule(name) for name in DEFAULT_RULES}
    return Policy(
        approve=ApprovalRules(**rules),
        block_agents=list(blocked),
        sandbox=policy.sandbox,
        network=policy.network,
        files=policy.files,
    )


def recorded(document: dict[str, Any] | None) -> Policy:
    """The policy a run recorded; the defaults for a run recorded before policies existed."""
    return Policy.model_validate(document) if document else Policy()


def blocked_problem(agent: str, path: str) -> Problem:
    return Problem(
        path,
        f"agent {agent!r} is blocked by the policy (block_agents in the project configuration "
        "or the workflow's policy); use another agent",
    )
