"""Every refusal the HTTP API makes, as one JSON shape and the right 4xx:

    {"error": {"type": str, "message": "what went wrong and what to fix", ...details}}

Podium's error tree (podium.errors) maps to statuses in one table, `STATUSES`, most specific
class first; FastAPI's own refusals (a malformed body, an unknown route) get the same shape. An
unexpected exception is a 500 with the same shape and no traceback in the body."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium.errors import (
    ConcurrencyError,
    InputError,
    InvalidTransitionError,
    LeaseHeldError,
    PodiumError,
    RunError,
    RunExistsError,
    RunNotFoundError,
    SpecError,
    StepNotFoundError,
    StoreError,
    StoreUnavailableError,
    ThreadBusyError,
    UsageError,
)

log = logging.getLogger("podium.server")

STATUSES: tuple[tuple[type[PodiumError], int], ...] = (
    (RunNotFoundError, 404),
    (StepNotFoundError, 404),
    (RunExistsError, 409),
    (InvalidTransitionError, 409),  # not waiting, already decided, not failed …
    (ThreadBusyError, 409),
    (LeaseHeldError, 409),
    (ConcurrencyError, 409),
    (StoreUnavailableError, 503),
    (StoreError, 503),
    (SpecError, 422),
    (InputError, 422),
    (UsageError, 400),
    (RunError, 409),
)
HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


class ProblemDetail(BaseModel):
    """What went wrong: a type to branch on, a message for a person, and details (`run_id`,
    `step_id`, `problems`: one `{path, message}` per fault in a workflow or a request)."""

    model_config = ConfigDict(extra="allow")
    type: str
    message: str


class Problem(BaseModel):
    error: ProblemDetail


_MEANINGS = {
    400: "Bad input (a malformed body, a bad cursor or id, an impossible combination)",
    401: "No valid bearer token (the server requires tokens)",
    403: "The token lacks the scope this call needs",
    404: "No such run, step or thread",
    409: "The run is not in a state that allows this (not waiting, already decided …)",
    413: "The request body is over the server's limit",
    422: "The workflow, its inputs or the request's fields are invalid (each one listed)",
    503: "The store is unavailable; try again",
}
# Every route may refuse with these, in the one shape above (the OpenAPI document says so).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": meaning} for status, meaning in _MEANINGS.items()
}


class ApiError(Exception):
    """A refusal the server itself decides (auth, body size, a bad cursor)."""

    def __init__(
        self, status: int, kind: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def status_of(error: PodiumError) -> int:
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 400


def error_body(kind: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **details}}


def podium_error_body(error: PodiumError) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for name in ("run_id", "step_id", "thread"):
        if getattr(error, name, None) is not None:
            details[name] = getattr(error, name)
    if isinstance(error, SpecError):
        details["problems"] = [{"path": p.path, "message": p.message} for p in error.problems]
    return error_body(type(error).__name__, str(error), **details)


def _podium(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PodiumError)
    return JSONResponse(podium_error_body(exc), status_code=status_of(exc))


def _api(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = error_body(exc.kind, exc.message)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    """A body that is not JSON is a 400; JSON of the wrong shape a 422 listing each field."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors) or not _is_json(await request.body()):
        message = "the request body is not valid JSON; send a JSON object (Content-Type: "
        return JSONResponse(
            error_body("malformed_json", message + "application/json)"), status_code=400
        )
    problems = [
        {"path": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:10])
    message = f"the request does not fit this call: {listed}; see /docs for its shape"
    return JSONResponse(error_body("invalid", message, problems=problems), status_code=422)


def _is_json(body: bytes) -> bool:
    if not body:
        return True  # no body: the fields it lacks are listed instead
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTP_TYPES.get(exc.status_code, "error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no such route: {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs"
    return JSONResponse(error_body(kind, message), status_code=exc.status_code, headers=exc.headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    message = "the server failed unexpectedly; its log has the details, please report it"
    return JSONResponse(error_body("internal", message), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers: Podium's errors, the server's own, FastAPI's, and the rest."""
    app.add_exception_handler(PodiumError, _podium)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
