"""The web UI: its page (server/static/, plain HTML, ES modules and CSS, no build step) at `/`,
and the two reads only the page needs: a run's graph drawn by podium.svg (each node is
`<g id="step-ID">`, so the page recolours it from the event stream instead of laying it out
again) and the JSON schema an approval's edit must fit, which the page checks before sending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from podium.core.state import require_step
from podium.pictures import run_picture
from podium.server.auth import require
from podium.server.deps import EngineDep, run_view
from podium.spec.model import PlanStep
from podium.spec.plan import plan_schema
from podium.svg import svg

STATIC = Path(__file__).with_name("static")
# The page runs only its own scripts and styles: no inline script, no other origin, no plugins,
# so even a string that slipped into the DOM as markup could not run.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# A drawing opened on its own runs nothing either.
DRAWING_POLICY = "default-src 'none'; frame-ancestors 'none'"
GUARDS = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"}

router = APIRouter(tags=["ui"])


class _Assets(StaticFiles):
    """The page's files, each with the page's policy (/ui/index.html opened directly too)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(GUARDS)
        return response


def install(app: FastAPI) -> None:
    """The page at `/`, its assets under `/ui/`, the graph and edit-schema routes."""
    app.include_router(router)
    app.mount("/ui", _Assets(directory=STATIC), name="ui")


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The single page; it routes by the URL's fragment (`#/runs/ID`)."""
    return FileResponse(STATIC / "index.html", headers={**GUARDS, "Cache-Control": "no-cache"})


@router.get(
    "/runs/{run_id}/graph.svg",
    dependencies=[require("read")],
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def graph(run_id: str, engine: EngineDep) -> Response:
    """The run's graph as SVG (`podium graph RUN --format svg`): plan children grouped under
    their plan, each node `<g id="step-ID">`."""
    picture = run_picture(await run_view(engine, run_id))
    headers = {"Content-Security-Policy": DRAWING_POLICY, "X-Content-Type-Options": "nosniff"}
    return Response(svg(picture), media_type="image/svg+xml", headers=headers)


@router.get("/runs/{run_id}/steps/{step_id}/edit-schema", dependencies=[require("read")])
async def edit_schema(run_id: str, step_id: str, engine: EngineDep) -> dict[str, Any]:
    """What an approval's edit of this step must fit: a plan step's plan (for the kinds it may
    generate), else the step's own fields (an edit replaces some of them)."""
    state = await run_view(engine, run_id)
    spec = require_step(state, step_id).spec
    if isinstance(spec, PlanStep):
        return {"subject": "plan", "schema": plan_schema(spec.kinds)}
    return {"subject": "step", "schema": type(spec).model_json_schema()}
