"""The `openai:` adapter: chat completions through the official SDK, against OpenAI, Azure OpenAI
or, via `base_url`, any server that speaks its protocol (vLLM, Ollama, llama.cpp, LM Studio,
LiteLLM, OpenRouter).

Choices worth knowing:
- The SDK's own retries are off (`max_retries=0`); failures become `ModelError` with `retryable`
  set and Podium's retry policy decides.
- Options: the request's `ModelOptions` over the provider's `defaults`. `max_tokens` goes as
  `max_completion_tokens` to OpenAI's reasoning models (o1/o3/o4…, gpt-5…) and to Azure, as
  `max_tokens` elsewhere; `tool_choice` and `parallel_tool_calls` only when tools are sent; a
  tool name as `tool_choice` forces that function; `stream=False` makes one whole request.
- Structured output (`structured_output=`): `json_schema` (strict only on OpenAI proper and when
  the schema can be put in its strict subset, optional properties made nullable and their nulls
  dropped from the reply), `json_object` or `prompt` (the schema written into a system message),
  or `tool` (a forced `respond` tool). `auto` starts with `json_schema`; a 400 that names
  `response_format` moves it to `json_object`, then to `prompt`, and the model remembers the mode
  that worked. A schema the server calls invalid is not retried. Empty schemas are sent as
  `{"type": "object"}`; non-object roots are wrapped in `{"value": …}` and unwrapped. The caller
  validates the reply and re-asks when it does not fit; `ModelResponse.structured_mode` says how
  it was asked for.
- No reply passes for an answer when it is not one: no choices, an empty message, no finish reason
  (cut off: retryable), or `finish_reason: length` (not retryable: raise `max_tokens`).
- Usage is asked for in streams (`include_usage`); a server that omits it gets it estimated at
  about four characters a token (tiktoken is not a dependency), marked `Usage.estimated`.
- Tool-call assistant messages are sent with `content: ""` (llama.cpp refuses `null`). Tool-call
  arguments that are not a JSON object are kept as `{"_raw": text}` so the caller can show the
  model its mistake and ask again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlparse

import openai

from podium.errors import ModelError, UsageError
from podium.llm._openai_reply import BadReply, Raw, checked, from_completion, from_stream
from podium.llm._openai_request import Shape, Target, request_params
from podium.llm._structured import (
    FALLBACKS,
    RESPOND_TOOL,
    SETTINGS,
    Mode,
    Setting,
    rejects_response_format,
    schema_invalid,
    unwrap,
)
from podium.llm.base import (
    AzureSettings,
    DeltaSink,
    Message,
    ModelOptions,
    ModelRequest,
    ModelResponse,
    caller,
)

PROVIDER = "openai"
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "podium-local"
OPENAI_HOST = "api.openai.com"


class _Refused(Exception):
    """The server refused the structured-output mode; auto mode tries the next one."""


class OpenAIModel:
    """One model behind the OpenAI chat-completions API (or a server compatible with it)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float | None = None,
        organization: str | None = None,
        headers: Mapping[str, str] | None = None,
        defaults: ModelOptions | None = None,
        azure: AzureSettings | None = None,
        structured_output: str = "auto",
        images: bool | None = None,
    ) -> None:
        """`images`: whether the model takes images (tool results' images are sent to it);
        None guesses from the name for OpenAI's own endpoint (gpt-4o, gpt-4.1, gpt-5, o-series)
        and says no for any other server."""
        if structured_output not in SETTINGS:
            raise UsageError(
                f"structured_output {structured_output!r} is not a mode; use one of: "
                + ", ".join(SETTINGS)
            )
        self.model = model
        self.name = f"{PROVIDER}:{model}"
        self.accepts_images = images if images is not None else _vision(model, base_url, azure)
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_seconds = timeout_seconds
        self._organization = organization
        self._headers = dict(headers or {})
        self._defaults = defaults or ModelOptions()
        self._azure = azure
        self._setting = cast(Setting, structured_output)
        self._mode: Mode = "json_schema" if self._setting == "auto" else self._setting
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def structured_mode(self) -> str:
        """The structured-output mode the next call will use (auto mode learns it)."""
        return self._mode

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        client = self._client_for(request)
        options = request.options.merged(self._defaults)
        mode = self._mode if request.output_schema is not None else None
        while True:
            try:
                response = await self._attempt(client, request, options, mode, on_delta)
            except _Refused:
                mode = FALLBACKS[cast(str, mode)]
                continue
            if mode is not None:
                self._mode = mode
            return response

    async def _attempt(
        self,
        client: openai.AsyncOpenAI,
        request: ModelRequest,
        options: ModelOptions,
        mode: Mode | None,
        on_delta: DeltaSink | None,
    ) -> ModelResponse:
        target = self._target(str(client.base_url))
        shape = None
        if request.output_schema is not None:
            shape = Shape.of(request.output_schema, strict=target.strict and mode == "json_schema")
        params = request_params(target, request, options, mode, shape)
        timeout = options.timeout_seconds or self._timeout_seconds
        if timeout is not None:
            params["timeout"] = timeout
        try:
            raw = await _send(client, params, on_delta if options.stream else None)
            response = checked(raw, request)
        except openai.OpenAIError as exc:
            if self._falls_back(exc, mode):
                raise _Refused from exc
            raise self._error(exc, request, str(client.base_url), timeout, mode) from exc
        except BadReply as bad:
            raise self._failure(
                request, bad.what, retryable=bad.retryable, error_type=bad.error_type
            ) from None
        response = _shaped(response, mode, shape)
        if on_delta is not None and not options.stream and response.text:
            on_delta(response.text)  # a live view still shows the text, all at once
        return response

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop, if one was opened."""
        if self._client is not None:
            await self._client.close()
            self._client = self._client_loop = None

    def _target(self, base_url: str) -> Target:
        model = self.model
        if self._azure is not None:
            model = self._azure.deployment or self.model
        proper = self._azure is None and urlparse(base_url).hostname == OPENAI_HOST
        return Target.of(model, azure=self._azure is not None, openai_proper=proper)

    def _client_for(self, request: ModelRequest) -> openai.AsyncOpenAI:
        """The SDK client of the running event loop, created on first use in that loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._new_client(request)
            self._client_loop = loop
        return self._client

    def config_problem(self) -> str | None:
        """What keeps every call from being made (no key and no server to call), or None: asked
        when a run is submitted, so a run that cannot call its model is never created."""
        if self._azure is not None:
            if self._api_key or os.environ.get("AZURE_OPENAI_API_KEY"):
                return None
            return "no Azure API key; set AZURE_OPENAI_API_KEY (or pass api_key)"
        if self._api_key or os.environ.get("OPENAI_API_KEY"):
            return None
        if self._base_url or os.environ.get("OPENAI_BASE_URL"):
            return None
        return (
            "no API key; set OPENAI_API_KEY (or pass api_key), or set OPENAI_BASE_URL "
            "(or pass base_url) to use a local server such as Ollama (http://localhost:11434/v1)"
        )

    def _new_client(self, request: ModelRequest) -> openai.AsyncOpenAI:
        problem = self.config_problem()
        if problem is not None:
            raise self._failure(request, problem, retryable=False, error_type="config")
        if self._azure is not None:
            return self._azure_client(request, self._azure)
        base_url = self._base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = self._api_key or os.environ.get("OPENAI_API_KEY") or None
        return openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            organization=self._organization,
            default_headers=self._headers or None,
            max_retries=0,
        )

    def _azure_client(self, request: ModelRequest, azure: AzureSettings) -> openai.AsyncOpenAI:
        api_key = self._api_key or os.environ.get("AZURE_OPENAI_API_KEY")
        return openai.AsyncAzureOpenAI(
            api_key=api_key,
            azure_endpoint=azure.endpoint,
            api_version=azure.api_version,
            azure_deployment=azure.deployment or self.model,
            default_headers=self._headers or None,
            max_retries=0,
        )

    def _falls_back(self, exc: openai.OpenAIError, mode: Mode | None) -> bool:
        """Auto mode, and the server refused this structured-output mode: try the next one."""
        if self._setting != "auto" or mode not in FALLBACKS:
            return False
        if not isinstance(exc, openai.APIStatusError):
            return False
        return rejects_response_format(exc.status_code, f"{_server_message(exc)} {exc.body}")

    def _error(
        self,
        exc: openai.OpenAIError,
        request: ModelRequest,
        base_url: str,
        timeout: float | None,
        mode: Mode | None,
    ) -> ModelError:
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        if isinstance(exc, openai.APIStatusError) and mode is not None:
            message = _server_message(exc)
            if schema_invalid(status, message):
                what = (
                    f"HTTP {status} the server finds the output schema invalid: {message}; "
                    "fix the agent's output schema (retrying will not help)"
                )
                return self._failure(
                    request, what, retryable=False, error_type="invalid_schema", status=status
                )
        what, retryable, error_type = _classify(exc, self.model, base_url, timeout)
        return self._failure(
            request, what, retryable=retryable, error_type=error_type, status=status
        )

    def _failure(
        self,
        request: ModelRequest,
        what: str,
        *,
        retryable: bool,
        error_type: str,
        status: int | None = None,
    ) -> ModelError:
        """A ModelError whose message names the model, the agent and the step."""
        return ModelError(
            f"{caller(self.name, request)}: {what}",
            retryable=retryable,
            provider=PROVIDER,
            status=status,
            error_type=error_type,
        )


async def _send(
    client: openai.AsyncOpenAI, params: dict[str, Any], on_delta: DeltaSink | None
) -> Raw:
    if on_delta is None:
        return from_completion(await client.chat.completions.create(**params))
    stream = await client.chat.completions.create(
        **params, stream=True, stream_options={"include_usage": True}
    )
    return await from_stream(stream, on_delta)


def _shaped(response: ModelResponse, mode: Mode | None, shape: Shape | None) -> ModelResponse:
    """The reply in the caller's terms: the `respond` tool's arguments as the text, a wrapped
    value unwrapped, strict-mode nulls dropped; the mode recorded."""
    if mode is None or shape is None:
        return response
    message = response.message
    finish_reason = response.finish_reason
    answer = next((c for c in message.tool_calls if c.name == RESPOND_TOOL), None)
    if mode == "tool" and answer is not None:
        content = json.dumps(answer.arguments, ensure_ascii=False)
        message, finish_reason = Message(role="assistant", content=content), "stop"
    if not message.tool_calls:
        content = unwrap(message.content, shape.wrapped, shape.strict_from)
        message = Message(role="assistant", content=content)
    return ModelResponse(
        message=message,
        usage=response.usage,
        model=response.model,
        finish_reason=finish_reason,
        structured_mode=mode,
    )


# -- errors -----------------------------------------------------------------------------------


def _classify(
    exc: openai.OpenAIError, model: str, base_url: str, timeout: float | None
) -> tuple[str, bool, str]:
    """(what went wrong and what to do, retryable, error_type) for one SDK exception."""
    if isinstance(exc, openai.APITimeoutError):
        after = f" after {timeout:g}s" if timeout is not None else ""
        return f"timed out{after}; the server is slow or busy", True, "timeout"
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        hint = "check the server is running and OPENAI_BASE_URL / base_url is right"
        return f"cannot connect to {base_url}{cause}; {hint}", True, "connection"
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc.status_code, _server_message(exc), model, base_url)
    if isinstance(exc, openai.APIError):
        return f"the server sent an error: {exc.message}", True, "server"
    return f"the OpenAI client failed: {exc}", False, "config"


def _classify_status(status: int, message: str, model: str, base_url: str) -> tuple[str, bool, str]:
    head = f"HTTP {status}"
    if status == 429:
        return f"{head} rate limited: {message}", True, "rate_limit"
    if status >= 500:
        return f"{head} server error: {message}", True, "server"
    if status in (401, 403):
        hint = "check OPENAI_API_KEY (or the api_key given to the model)"
        return f"{head} not authorised: {message}; {hint}", False, "auth"
    if status == 404:
        hint = f"the model name {model!r} or the base URL {base_url} is wrong"
        return f"{head} not found: {message}; {hint}", False, "not_found"
    return f"{head} request refused: {message}", False, "bad_request"


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


_VISION = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-5|o[1-9])")


def _vision(model: str, base_url: str | None, azure: AzureSettings | None) -> bool:
    """OpenAI's own vision-capable families; any other server says what it takes by `images`."""
    proper = azure is None and (base_url is None or "api.openai.com" in base_url)
    return proper and _VISION.match(model) is not None
