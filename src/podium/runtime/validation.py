"""Checking a workflow without running it: the file or document, the agents it names, their
tools, the model each agent would call and the child workflows, on an engine over a store in
memory that drives nothing. `podium validate` and the HTTP API's validate call this."""

from __future__ import annotations

from pathlib import Path

from podium.config import ProjectConfig
from podium.errors import PodiumError, Problem, SpecError
from podium.runtime.engine import Engine
from podium.runtime.submission import AgentChecks, check_agent_steps, check_children
from podium.spec.lint import workflow_warnings
from podium.spec.load import WorkflowSource, load_workflow
from podium.spec.model import Workflow
from podium.store.memory import MemoryEventStore


async def check_workflow(
    source: WorkflowSource,
    *,
    workspace: Path,
    config: ProjectConfig | None,
    agents_dir: Path | None = None,
    default_model: str | None = None,
) -> Workflow:
    """The validated workflow, or the PodiumError its run would be refused with."""
    async with Engine(
        MemoryEventStore(),
        mode="control",
        agents_dir=agents_dir,
        default_model=default_model,
        config=config,
        workspace=workspace,
    ) as engine:  # the agents, MCP servers and models the run would use; no store is touched
        workflow = load_workflow(source, agents=AgentChecks(engine.services))
        check_agent_steps(workflow, engine.services)  # the model checks `run` makes
        check_children(workflow, source, workspace, engine.services, engine.children.workflows)
    return workflow


def problems_of(error: PodiumError) -> list[Problem]:
    """Every problem a refusal names: a SpecError's list, else its one message."""
    if isinstance(error, SpecError):
        return list(error.problems)
    return [Problem("", str(error))]


async def validation(
    source: WorkflowSource,
    *,
    workspace: Path,
    config: ProjectConfig | None,
    agents_dir: Path | None = None,
    default_model: str | None = None,
) -> tuple[Workflow | None, list[Problem], list[Problem]]:
    """(the workflow or None, its problems, its warnings): what `validate --json` prints."""
    try:
        workflow = await check_workflow(
            source,
            workspace=workspace,
            config=config,
            agents_dir=agents_dir,
            default_model=default_model,
        )
    except PodiumError as exc:
        return None, problems_of(exc), []
    return workflow, [], workflow_warnings(workflow)
