"""Steps of a run: one step in full (`podium show RUN STEP --json`), the run's logs (`podium
logs RUN [STEP] --json`, as a list), a rating (`podium feedback`), and plan versions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from podium import views
from podium.core.fold import replay
from podium.core.state import require_step
from podium.runtime.logs import log_entries
from podium.server.auth import require
from podium.server.deps import Body, EngineDep, run_view
from podium.server.problems import ApiError
from podium.server.tokens import TokenRecord
from podium.stepviews import step_detail_document

router = APIRouter(tags=["steps"])


class FeedbackBody(Body):
    rating: Literal["up", "down"] = Field(description="The step did well (up) or badly (down).")
    comment: str | None = Field(None, description="What you think of it (≤ 2,000 characters).")


@router.get("/runs/{run_id}/steps/{step_id}", dependencies=[require("read")])
async def show_step(run_id: str, step_id: str, engine: EngineDep) -> dict[str, Any]:
    """Everything about one step: tries, rendered input, output, model and tool calls."""
    stored = await engine.store.read(run_id)
    return step_detail_document(replay(e.event for e in stored), step_id, stored)


@router.get("/runs/{run_id}/logs", dependencies=[require("read")])
async def logs(
    run_id: str,
    engine: EngineDep,
    step: str | None = Query(None, description="Only this step's logs."),
) -> list[dict[str, Any]]:
    """What the steps wrote so far, in the order it was recorded."""
    state = await engine.state(run_id)
    if step is not None:
        require_step(state, step)
    return await log_entries(engine.store, run_id, state.workspace_path, step)


@router.post("/runs/{run_id}/steps/{step_id}/feedback", status_code=201)
async def feedback(
    run_id: str,
    step_id: str,
    body: FeedbackBody,
    engine: EngineDep,
    token: Annotated[TokenRecord | None, require("write")],
) -> dict[str, Any]:
    """Rate a finished step up or down, with an optional comment; it is recorded as given by
    the caller's token (`token:NAME`), or by the server's OS user where no token is needed."""
    await engine.store.get_run(run_id)
    who = f"token:{token.name}" if token is not None else None
    recorded = await engine.feedback(run_id, step_id, body.rating, body.comment, who=who)
    notes = (await engine.state(run_id)).feedback.get(step_id, [])
    return views.feedback_document(
        run_id, step_id, body.rating, body.comment, recorded=recorded, notes=notes
    )


@router.get("/runs/{run_id}/plans", dependencies=[require("read")])
async def plans(run_id: str, engine: EngineDep) -> dict[str, list[Any]]:
    """Every plan step's versions, oldest first (the `plans` of `podium show --json`)."""
    return {sid: plan.versions for sid, plan in (await run_view(engine, run_id)).plans.items()}


@router.get("/runs/{run_id}/plans/{step_id}", dependencies=[require("read")])
async def plan_versions(run_id: str, step_id: str, engine: EngineDep) -> list[Any]:
    """One plan step's versions, oldest first, to compare side by side."""
    state = await run_view(engine, run_id)
    require_step(state, step_id)
    plan = state.plans.get(step_id)
    if plan is None:
        raise ApiError(404, "not_found", f"step {step_id} of run {run_id} has made no plan")
    return list(plan.versions)
