"""Workflows: validate a document (or a file on the server) without running it, answering what
`podium validate --json` prints: every problem with its path, and the warnings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from podium import views
from podium.runtime.validation import validation
from podium.runtime.workspace import choose_workspace
from podium.server.auth import require
from podium.server.deps import Body, OptionsDep
from podium.server.runs import source_of

router = APIRouter(tags=["workflows"])


class ValidateBody(Body):
    workflow: dict[str, Any] | None = Field(None, description="The workflow document.")
    path: str | None = Field(None, description="Or a workflow file under the server's workspace.")


@router.post("/workflows/validate", dependencies=[require("read")])
async def validate(body: ValidateBody, options: OptionsDep) -> dict[str, Any]:
    """Check a workflow and everything its run would use (agents, tools, models, child
    workflows); `ok` false lists every problem. Nothing is recorded."""
    source = source_of(body, options.workspace)
    workspace = choose_workspace(source, None if isinstance(source, str) else options.workspace)
    workflow, problems, warnings = await validation(
        source,
        workspace=workspace,
        config=options.config,
        agents_dir=options.agents_dir,
        default_model=options.default_model,
    )
    name, count = (workflow.name, len(workflow.steps)) if workflow else (None, None)
    return views.validation_document(name, count, problems, warnings)
