"""The `http` executor: one request through a shared httpx client, with an idempotency key, a
capped body, and errors sorted into retryable (429, 5xx, network) and permanent ones. Every
connection goes through the SSRF guard (netguard.py) with the run's `policy.network`."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx

from podium.errors import StepExecutionError
from podium.spec.model import HttpStep, StepBase
from podium.spec.network import NetworkPolicy
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices
from podium.steps.netguard import drop_credentials, guarded_transport, origin
from podium.steps.output import shape_output, with_marker

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(None, connect=10.0)  # the runtime enforces the step's own timeout
_SCHEMES = ("http", "https")


def check_url(url: str | httpx.URL) -> httpx.URL:
    """Refuse URLs Podium will not fetch. Runs before the request and on every redirect.

    The addresses are checked where connections are made (netguard.GuardedBackend).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _bad_url(str(url), str(exc)) from None
    if parsed.scheme not in _SCHEMES:
        raise _bad_url(str(url), "the scheme must be http or https")
    if not parsed.host:
        raise _bad_url(str(url), "it has no host")
    return parsed


def _bad_url(url: str, why: str) -> StepExecutionError:
    return StepExecutionError(
        f"invalid URL {url!r}: {why}; write a full URL such as https://example.com/path",
        retryable=False,
        error_type="usage",
    )


_ORIGIN = "podium.origin"  # request extension: the origin the step asked for


class HttpExecutor:
    """Runs `HttpStep`s with one lazily created `httpx.AsyncClient` per event loop and network
    allow-list (a pooled connection is only reused under the allow-list it was checked with)."""

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, ...], _LoopClient]
        ] = weakref.WeakKeyDictionary()

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, HttpStep):
            raise TypeError(f"HttpExecutor cannot run a {type(step).__name__}")
        url = httpx.URL(check_url(step.url))
        if step.query:  # merged into the URL's own query string (params= would replace it)
            url = url.copy_merge_params(_query(step.query))
        client = await self._client(ctx.policy.network)
        request = client.build_request(
            step.method,
            url,
            headers=_headers(step, ctx),
            extensions={_ORIGIN: origin(url)},
            **_body(step),
        )
        status, text, value = await _send(client, request, step, ctx.output_limit_bytes)
        if not _expected(step, status):
            raise _status_error(step, status, text)
        output = shape_output(value, step.output, step_id=step.id)
        return StepResult(output, meta={"status": status})

    async def aclose(self) -> None:
        """Close this event loop's client now (it is closed anyway when the loop shuts down)."""
        for held in self._clients.pop(asyncio.get_running_loop(), {}).values():
            await held.close()

    async def _client(self, network: NetworkPolicy) -> httpx.AsyncClient:
        clients = self._clients.setdefault(asyncio.get_running_loop(), {})
        key = tuple(sorted(network.allow))
        held = clients.get(key)
        if held is None or held.client.is_closed:
            held = await _LoopClient.open(network)
            clients[key] = held
        return held.client


@dataclass(frozen=True, slots=True)
class _LoopClient:
    """A client and the async generator that closes it when its event loop shuts down.

    A client's connections belong to one loop. `asyncio.run` (and every `asyncio.Runner`) calls
    `loop.shutdown_asyncgens()` before closing the loop, which finalizes `closer` and so the client,
    leaving no socket open on a dead loop.
    """

    client: httpx.AsyncClient
    closer: AsyncGenerator[None, None]

    @classmethod
    async def open(cls, network: NetworkPolicy) -> _LoopClient:
        client = httpx.AsyncClient(
            transport=guarded_transport(network),
            trust_env=False,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=TIMEOUT,
            event_hooks={"request": [_check_request]},
        )
        closer = _close_at_shutdown(client)
        await anext(closer)
        return cls(client, closer)

    async def close(self) -> None:
        await self.closer.aclose()


async def _close_at_shutdown(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


async def _send(
    client: httpx.AsyncClient, request: httpx.Request, step: HttpStep, limit: int
) -> tuple[int, str, object]:
    """Status, body text (capped, with the marker) and the output: the text or parsed JSON."""
    try:
        response = await client.send(request, stream=True)
        try:
            data, complete = await _read_capped(response, limit)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise _transport_error(step, exc) from exc
    return response.status_code, *_decode(response, data, complete, step)


async def _check_request(request: httpx.Request) -> None:
    """Runs on the first request and on every redirect hop: the URL is one Podium fetches, and
    a hop to another origin than the step's carries no credential headers."""
    check_url(request.url)
    if origin(request.url) != request.extensions.get(_ORIGIN, origin(request.url)):
        drop_credentials(request.headers)


def _headers(step: HttpStep, ctx: StepContext) -> dict[str, str]:
    headers = dict(step.headers)
    names = {name.lower() for name in headers}
    if "idempotency-key" not in names:
        headers["Idempotency-Key"] = ctx.idempotency_key
    if isinstance(step.body, str) and "content-type" not in names:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return headers


def _body(step: HttpStep) -> dict[str, Any]:
    if step.body is None:
        return {}
    if isinstance(step.body, str):
        return {"content": step.body.encode()}
    return {"json": step.body}


def _query(query: dict[str, Any]) -> dict[str, Any]:
    """Query values: scalars and lists of scalars as they are; anything else as JSON text."""
    return {key: _query_value(value) for key, value in query.items()}


def _query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_query_value(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value)


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all of it."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        room = limit - len(kept)
        kept += chunk[:room]
        if len(chunk) > room:
            return bytes(kept), False
    return bytes(kept), True


def _decode(
    response: httpx.Response, data: bytes, complete: bool, step: HttpStep
) -> tuple[str, object]:
    text = _text(response, data)
    if not complete:
        if step.output != "text" and _expected(step, response.status_code):
            raise StepExecutionError(
                f"the response from {step.method} {step.url} is larger than the output limit "
                f"({len(data)} bytes), so it cannot be parsed as JSON; raise output_limit_bytes",
                retryable=False,
                error_type="output",
            )
        text = with_marker(text, len(data), _known_length(response))
        return text, text
    if step.output == "text" and _is_json(response):
        try:
            return text, json.loads(text)
        except ValueError:
            return text, text  # labelled JSON but is not: keep the text
    return text, text


def _text(response: httpx.Response, data: bytes) -> str:
    try:
        return data.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        return data.decode("utf-8", errors="replace")


def _known_length(response: httpx.Response) -> int | None:
    if "content-encoding" in response.headers:
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _is_json(response: httpx.Response) -> bool:
    media: str = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _expected(step: HttpStep, status: int) -> bool:
    if step.expect_status is not None:
        return status in step.expect_status
    return 200 <= status < 300


def _status_error(step: HttpStep, status: int, text: str) -> StepExecutionError:
    return StepExecutionError(
        f"HTTP {status} from {step.method} {step.url}: {text[:300]}",
        retryable=status == 429 or status >= 500,
        error_type="http",
    )


def _transport_error(step: HttpStep, exc: httpx.HTTPError) -> StepExecutionError:
    where = f"{step.method} {step.url}"
    if isinstance(exc, httpx.TimeoutException):
        return StepExecutionError(f"timed out: {where} ({exc})", error_type="timeout")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        detail = str(exc) or type(exc).__name__
        return StepExecutionError(f"connection failed: {where}: {detail}", error_type="connection")
    if isinstance(exc, httpx.TooManyRedirects):
        message = f"more than {MAX_REDIRECTS} redirects: {where}; point `url` at the final address"
        return StepExecutionError(message, retryable=False, error_type="http")
    return StepExecutionError(
        f"request failed: {where}: {type(exc).__name__}: {exc}", retryable=False, error_type="http"
    )
