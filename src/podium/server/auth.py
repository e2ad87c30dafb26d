"""Bearer-token checks per route, by scope; the tokens themselves are server/tokens.py's.

Scopes: `read` (every GET), `write` (submit, cancel, retry, skip, fork, prune, feedback, a
thread's message) and `approve` (approve, reject, answer). `write` and `approve` both include
`read` and not each other: a CI job that starts runs cannot approve them, and a reviewer who
approves cannot start shell steps. A token may hold several scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from podium.server.problems import ApiError
from podium.server.tokens import Scope, TokenBook, TokenRecord


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """`required`: every request needs a token (tokens exist, or the server is not on loopback);
    otherwise (loopback, no tokens) every request is allowed."""

    book: TokenBook | None
    required: bool


_bearer = HTTPBearer(auto_error=False, description="A token from `podium token create`.")


def require(scope: Scope) -> Any:
    """The route dependency: the request's bearer token must hold `scope`."""

    def check(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> TokenRecord | None:
        policy: AuthPolicy = request.app.state.auth
        if not policy.required:
            return None
        if credentials is None or policy.book is None:
            raise _unauthorized("this server needs a bearer token: send Authorization: Bearer …")
        record = policy.book.lookup(credentials.credentials)
        if record is None:
            raise _unauthorized("the bearer token is not known here (revoked or mistyped)")
        if not record.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"token {record.name} has scope {', '.join(record.scopes)}; this call needs "
                f"`{scope}`: create one with `podium token create --scope {scope}`",
            )
        return record

    return Depends(check)


def _unauthorized(message: str) -> ApiError:
    hint = "; create one with `podium token create --scope read|write|approve`"
    return ApiError(401, "unauthorized", message + hint, headers={"WWW-Authenticate": "Bearer"})
