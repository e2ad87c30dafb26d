"""`workflow` steps' targets: which file or registered workflow a step names, and the checks made
before a run is recorded — the target exists and validates, the step's inputs fit the target's
declared inputs, and no chain of workflow steps leads back to a workflow already on it.

A `workflow:` reference is a registered name when the caller registered it (`Engine(workflows=
{name: path or Workflow})`); else a path (it has a `/` or ends in .yaml, .yml or .json) relative
to the run's workspace; else a name looked up as `workflows/<name>.yaml|.yml|.json` in the
workspace. Children share their parent's workspace, so every reference in the tree resolves
against the same folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from podium.errors import Problem, SpecError, UsageError
from podium.spec.load import load_workflow
from podium.spec.model import Workflow, WorkflowStep
from podium.spec.validate import AgentNames

MAX_NESTING = 16  # workflow steps inside workflow steps, followed at validation
SUFFIXES = (".yaml", ".yml", ".json")
WORKFLOWS_DIR = "workflows"

Registry = Mapping[str, "str | os.PathLike[str] | Workflow"]


@dataclass(frozen=True, slots=True)
class Target:
    """What a `workflow:` reference resolved to: `key` names it in cycle messages (a file's
    path relative to the workspace when it is inside, or `name:<name>`)."""

    key: str
    source: Path | Workflow

    def load(self, agents: AgentNames | None = None) -> Workflow:
        return load_workflow(self.source, agents=agents)


def resolve(reference: str, workspace: Path, registry: Registry | None = None) -> Target:
    """The workflow a step names; UsageError saying where it looked when there is none."""
    registered = (registry or {}).get(reference)
    if isinstance(registered, Workflow):
        return Target(f"name:{reference}", registered)
    if registered is not None:
        return _file_target(Path(registered), workspace, reference)
    if "/" in reference or reference.endswith(SUFFIXES):
        return _file_target(workspace / reference, workspace, reference)
    tried = [workspace / WORKFLOWS_DIR / f"{reference}{suffix}" for suffix in SUFFIXES]
    for path in tried:
        if path.is_file():
            return _file_target(path, workspace, reference)
    names = sorted(registry or {})
    known = f"; registered names: {', '.join(names)}" if names else ""
    raise UsageError(
        f"workflow {reference!r} is neither a registered name nor a file: no "
        f"{tried[0].relative_to(workspace)} (or .yml, .json) in {workspace}{known}"
    )


def _file_target(path: Path, workspace: Path, reference: str) -> Target:
    full = path if path.is_absolute() else (workspace / path)
    if not full.is_file():
        raise UsageError(
            f"workflow file {full} (from {reference!r}) does not exist; check the path"
        )
    return Target(file_key(full, workspace), full.resolve())


def file_key(path: Path, workspace: Path) -> str:
    """How a workflow file is named in a cycle: relative to the workspace when inside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(workspace.resolve()))
    except ValueError:
        return str(resolved)


def check_tree(
    workflow: Workflow,
    workspace: Path,
    *,
    registry: Registry | None = None,
    agents: AgentNames | None = None,
    root: str | None = None,
) -> list[Workflow]:
    """Every workflow reachable through `workflow`'s workflow steps, loaded and checked;
    SpecError with each problem prefixed by the step path that leads to it (`steps[2]`, or
    `steps[2] -> steps[0]` for a grandchild). `root` names the workflow itself when it is a
    file, so a child naming it back is a cycle at once."""
    found: list[Workflow] = []
    chain = (root,) if root is not None else ()
    problems = _check(workflow, workspace, registry, agents, chain, "", found, workflow)
    if problems:
        raise SpecError(problems)
    return found


def _check(
    workflow: Workflow,
    workspace: Path,
    registry: Registry | None,
    agents: AgentNames | None,
    chain: tuple[str, ...],
    where: str,
    found: list[Workflow],
    top: Workflow,
) -> list[Problem]:
    problems: list[Problem] = []
    for index, step in enumerate(workflow.steps):
        if not isinstance(step, WorkflowStep):
            continue
        path = f"{where}steps[{index}]"
        try:
            target = resolve(step.workflow, workspace, registry)
        except UsageError as exc:
            problems.append(Problem(f"{path}.workflow", str(exc)))
            continue
        if target.key in chain:
            loop = " -> ".join((*chain[chain.index(target.key) :], target.key))
            problems.append(Problem(f"{path}.workflow", f"workflow steps recurse: {loop}"))
            continue
        if len(chain) >= MAX_NESTING:
            message = f"workflow steps nest deeper than {MAX_NESTING} levels: {' -> '.join(chain)}"
            problems.append(Problem(f"{path}.workflow", message))
            continue
        try:
            child = target.load(agents)
        except (SpecError, UsageError) as exc:
            problems += _prefixed(exc, f"{path} (workflow {step.workflow})")
            continue
        if child == top and (not chain or chain[0] != target.key):  # the root, given as data
            loop = " -> ".join((target.key, *chain, target.key))
            problems.append(Problem(f"{path}.workflow", f"workflow steps recurse: {loop}"))
            continue
        found.append(child)
        problems += input_problems(step, child, f"{path}.inputs")
        problems += _check(
            child, workspace, registry, agents, (*chain, target.key), f"{path} -> ", found, top
        )
    return problems


def input_problems(step: WorkflowStep, child: Workflow, path: str) -> list[Problem]:
    """The step's inputs must be inputs the child declares, and give every required one."""
    problems = [
        Problem(
            f"{path}.{name}",
            f"workflow {child.name!r} declares no input {name!r}; it takes "
            f"{', '.join(child.inputs) or 'no inputs'}",
        )
        for name in step.inputs
        if name not in child.inputs
    ]
    missing = [n for n, spec in child.inputs.items() if spec.is_required and n not in step.inputs]
    if missing:
        problems.append(
            Problem(
                path,
                f"workflow {child.name!r} needs input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; give {'them' if len(missing) > 1 else 'it'} in inputs:",
            )
        )
    return problems


def _prefixed(exc: SpecError | UsageError, prefix: str) -> list[Problem]:
    if isinstance(exc, SpecError):
        return [
            Problem(f"{prefix}: {p.path}" if p.path else prefix, p.message) for p in exc.problems
        ]
    return [Problem(prefix, str(exc))]
