"""People in the loop: what waits for a person (across live runs, or in one run), the decisions
(approve as asked or edited, reject, answer a human step) and threads (post a message, list
them). Every decision is checked by the engine before anything is posted: a step that is not
waiting, or was already decided, is a 409 and nothing changes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from podium import views
from podium.errors import UsageError
from podium.runtime.approvals import waiting_runs
from podium.runtime.threads import thread_runs
from podium.server.auth import require
from podium.server.deps import Body, EngineDep, OptionsDep, existing_run

router = APIRouter(tags=["people"])


class ApproveBody(Body):
    edit: dict[str, Any] | None = Field(
        None, description="Approve this instead: a plan, or the step fields to replace."
    )
    set: list[str] = Field(
        default_factory=list, description="KEY=VALUE: replace one field (a.b reaches inside)."
    )


class RejectBody(Body):
    reason: str = Field("", description="Why; the step fails with it.")


class AnswerBody(Body):
    value: Any = Field(description="The answer: text, one of the choices, or what the schema says.")


class MessageBody(Body):
    message: str = Field(min_length=1, description="What to ask.")
    thread: str | None = Field(None, description="Continue this thread.")
    new_thread: str | None = Field(None, description="Start a thread with this id.")
    agent: str | None = Field(None, description="The agent (default: the routing's).")
    on_busy: str | None = Field(None, description="reject, queue or interrupt.")
    run_id: str | None = Field(None, description="Choose the run id.")


@router.get("/approvals", dependencies=[require("read")])
async def approvals(engine: EngineDep, response: Response) -> list[dict[str, Any]]:
    """What waits for a person in every live run, oldest first (`podium approvals --json`);
    X-More: true when more live runs exist than were read."""
    listed = await waiting_runs(engine)
    if listed.more:
        response.headers["X-More"] = "true"
    return [w.document() for w in listed.found]


@router.get("/runs/{run_id}/approvals", dependencies=[require("read")])
async def run_approvals(run_id: str, engine: EngineDep) -> list[dict[str, Any]]:
    """What waits for a person in this run and its live child runs."""
    return [w.document() for w in await engine.approvals(run_id)]


async def _approve(engine: Any, run_id: str, step_id: str | None, body: ApproveBody) -> Any:
    if body.edit is not None and body.set:
        raise UsageError("give either `edit` (the fields or plan) or `set` (KEY=VALUE), not both")
    await existing_run(engine, run_id)
    driving = await engine.approve(run_id, step_id, edit=body.edit, set=body.set)
    return {"run_id": run_id, "step_id": step_id, "action": "approve", "driving": driving}


async def _reject(engine: Any, run_id: str, step_id: str | None, body: RejectBody) -> Any:
    await existing_run(engine, run_id)
    driving = await engine.reject(run_id, step_id, reason=body.reason)
    return {"run_id": run_id, "step_id": step_id, "action": "reject", "driving": driving}


@router.post("/runs/{run_id}/approve", status_code=202, dependencies=[require("approve")])
async def approve_only(run_id: str, body: ApproveBody, engine: EngineDep) -> Any:
    """Approve what the run waits on, when only one thing is (`podium approve RUN`)."""
    return await _approve(engine, run_id, None, body)


@router.post(
    "/runs/{run_id}/steps/{step_id}/approve", status_code=202, dependencies=[require("approve")]
)
async def approve(run_id: str, step_id: str, body: ApproveBody, engine: EngineDep) -> Any:
    """Approve a step or plan, as asked or edited (`podium approve RUN STEP`)."""
    return await _approve(engine, run_id, step_id, body)


@router.post("/runs/{run_id}/reject", status_code=202, dependencies=[require("approve")])
async def reject_only(run_id: str, body: RejectBody, engine: EngineDep) -> Any:
    """Reject what the run waits on, when only one thing is (`podium reject RUN`)."""
    return await _reject(engine, run_id, None, body)


@router.post(
    "/runs/{run_id}/steps/{step_id}/reject", status_code=202, dependencies=[require("approve")]
)
async def reject(run_id: str, step_id: str, body: RejectBody, engine: EngineDep) -> Any:
    """Refuse a step or plan: the step fails with the reason (`podium reject RUN STEP`)."""
    return await _reject(engine, run_id, step_id, body)


@router.post(
    "/runs/{run_id}/steps/{step_id}/answer", status_code=202, dependencies=[require("approve")]
)
async def answer(run_id: str, step_id: str, body: AnswerBody, engine: EngineDep) -> Any:
    """Answer a human step's question; it is checked against what the step asks."""
    await existing_run(engine, run_id)
    driving = await engine.answer(run_id, step_id, body.value)
    return {"run_id": run_id, "step_id": step_id, "action": "answer", "driving": driving}


@router.get("/threads", dependencies=[require("read")])
async def threads(engine: EngineDep) -> list[dict[str, Any]]:
    """Threads, the most recently asked first (`podium threads --json`)."""
    return [views.thread_document(t) for t in await engine.threads()]


@router.get("/threads/{thread}/runs", dependencies=[require("read")])
async def thread(thread: str, engine: EngineDep) -> list[dict[str, Any]]:
    """One thread's runs (`podium threads T --json`)."""
    records = await thread_runs(engine.store, thread)
    return [views.thread_run_document(r, await engine.latest(r)) for r in records]


@router.post("/threads/messages", status_code=201, dependencies=[require("write")])
async def post_message(body: MessageBody, engine: EngineDep, options: OptionsDep) -> Any:
    """A message on a thread, answered by a routed agent (`podium ask`); without `thread` a new
    thread starts."""
    how = body.model_dump(exclude={"message"})
    asked = await engine.ask(body.message, **how, workspace=options.workspace)
    return {
        "run_id": asked.run_id,
        "thread": asked.thread,
        "agent": asked.agent,
        "routing": asked.routing,
        "new_thread": asked.new_thread,
        "waits_for": list(asked.waits_for),
        "interrupted": list(asked.interrupted),
    }
