"""The project configuration: `podium.toml` (or `[tool.podium]` in `pyproject.toml`) and the
`.mcp.json` beside it, found by walking up from the current directory and validated at load:
the default model, named providers, MCP servers and the agents folder."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from podium.agents import AgentOptions
from podium.errors import Problem, SpecError, UsageError
from podium.spec.execution import Execution, RayAddress
from podium.spec.files import FilePolicy
from podium.spec.network import NetworkPolicy
from podium.spec.policy import ApprovalRules, Policy
from podium.spec.routing import RoutingConfig, RoutingRule, ThreadsConfig
from podium.spec.sandbox import SandboxPolicy

CONFIG_ENV = "PODIUM_CONFIG"
PROJECT_FILE = "podium.toml"
PYPROJECT_FILE = "pyproject.toml"
MCP_FILE = ".mcp.json"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
BUILTIN_PROVIDERS = ("openai", "anthropic", "scripted", "function")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ProviderConfig(_Strict):
    """A named model endpoint. `type = "openai"`: an OpenAI-compatible server at `base_url`;
    `type = "azure"`: Azure OpenAI at `endpoint` with `api_version` (and `deployment`, else the
    model string names it). The key is read from the variable `api_key_env` when first used."""

    type: Literal["openai", "azure"] = "openai"
    base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(None, pattern=_ENV_NAME)
    headers: dict[str, str] = Field(default_factory=dict)
    options: AgentOptions = Field(default_factory=AgentOptions)
    endpoint: str | None = Field(None, pattern=r"^https?://\S+$")
    api_version: str | None = Field(None, min_length=1)
    deployment: str | None = Field(None, min_length=1)
    images: bool | None = None  # the models take images (None: known OpenAI families only)
    structured_output: Literal["auto", "json_schema", "json_object", "tool", "prompt"] | None = None

    @model_validator(mode="after")
    def _fits_its_type(self) -> ProviderConfig:
        azure_only = [k for k in ("endpoint", "api_version", "deployment") if getattr(self, k)]
        if self.type == "openai" and azure_only:
            raise ValueError(f'{", ".join(azure_only)} apply to type = "azure" only')
        if self.type == "azure" and self.base_url is not None:
            raise ValueError("an azure provider takes `endpoint`, not `base_url`")
        if self.type == "azure" and (self.endpoint is None or self.api_version is None):
            raise ValueError('type = "azure" needs `endpoint` and `api_version`')
        if self.options.provider is not None or self.options.tool_choice is not None:
            raise ValueError("a provider's `options` cannot set `provider` or `tool_choice`")
        return self

    def api_key(
        self, name: str, *, agent: str | None = None, step: str | None = None
    ) -> str | None:
        """The key from `api_key_env` (None if no variable is named); UsageError, naming who
        asked, if the variable is not set."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            who = f"agent {agent!r} " if agent else ""
            who += f"in step {step!r} " if step else ""
            raise UsageError(
                f"{who}uses provider {name!r}, whose key variable {self.api_key_env} is not set; "
                f"set {self.api_key_env} (the project configuration names it as api_key_env)"
            )
        return value


class McpServer(_Strict):
    """One MCP server in the `mcpServers` shape: `command` (+ `args`, `env`) for stdio, or
    `url` (+ `headers`) for streamable HTTP; `type` may say which; `timeout` bounds starting
    and the handshake (seconds). `source` is its file."""

    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    command: str | None = Field(None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = Field(None, min_length=1)  # relative to the config file's folder
    url: str | None = Field(None, pattern=r"^https?://\S+$")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0, le=3600)
    source: str = ""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (a stdio server) or `url` (streamable HTTP)")
        if self.type == "stdio" and self.command is None:
            raise ValueError('type = "stdio" needs a `command`')
        if self.type not in (None, "stdio") and self.url is None:
            raise ValueError(f"type = {self.type!r} needs a `url`")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` apply to a `command`, not to a `url`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` apply to a `url`, not to a `command`")
        return self

    def settings(self) -> dict[str, Any]:
        """The fields a tool registry's server takes (`type` and `source` left out)."""
        timeout = {"timeout": self.timeout} if self.timeout is not None else {}
        if self.command is not None:
            cwd = {"cwd": self.cwd} if self.cwd is not None else {}
            return {"command": self.command, "args": self.args, "env": self.env, **cwd, **timeout}
        return {"url": self.url, "headers": self.headers, **timeout}


class SecretsConfig(_Strict):
    """`[secrets]`: `env` names environment variables whose values are secrets: redacted from
    everything a run stores, streams, logs or exports (provider keys are redacted anyway)."""

    env: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(_ENV_NAME, name):
                raise ValueError(
                    f"{name!r} is not an environment variable name (letters, digits _)"
                )
        return value


class ProjectConfig(_Strict):
    """The effective configuration. `path` is the file it was read from (None: defaults, or
    given in code); `root` the folder relative paths are resolved against."""

    path: Path | None = None
    root: Path = Field(default_factory=Path.cwd)
    model: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]*:\S+$")
    agents: Path | None = None
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServer] = Field(default_factory=dict, alias="mcpServers")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    threads: ThreadsConfig = Field(default_factory=ThreadsConfig)
    policy: Policy = Field(default_factory=Policy)  # approval rules, blocked agents (baseline)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    # where steps run unless their workflow or they say (spec/execution.py), and the Ray
    # cluster `ray` steps go to (runtime/ray.py; PODIUM_RAY_ADDRESS wins)
    execution: Execution = "local"
    ray_address: RayAddress | None = None

    def secret_env(self) -> list[str]:
        """The variables whose values are secrets: `[secrets] env` and every provider's key."""
        keys = [p.api_key_env for p in self.providers.values() if p.api_key_env]
        return list(dict.fromkeys([*self.secrets.env, *keys]))

    def secret_values(self) -> list[str]:
        """The MCP servers' `env` and `headers` values (secrets by the shape of .mcp.json)."""
        servers = self.mcp_servers.values()
        return [v for s in servers for v in (*s.env.values(), *s.headers.values())]

    def provider(self, name: str) -> ProviderConfig | None:
        return self.providers.get(name)

    @property
    def agents_dir(self) -> Path | None:
        """The agents folder, resolved against `root` (None: the project's `agents/`)."""
        return (self.root / self.agents).resolve() if self.agents is not None else None

    def digest(self) -> str:
        """sha256 of the effective configuration: header and env values (secrets) count by
        their names only; where each server came from does not count."""
        document = {
            "model": self.model,
            "agents": str(self.agents_dir) if self.agents_dir else None,
            "providers": {n: _masked(p.model_dump(mode="json")) for n, p in self.providers.items()},
            "mcpServers": {
                n: _masked(s.model_dump(mode="json", exclude={"source"}))
                for n, s in self.mcp_servers.items()
            },
        }
        tables = (
            ("routing", self.routing),
            ("threads", self.threads),
            ("policy", self.policy),
            ("secrets", self.secrets),
        )
        for key, table in tables:
            if table != type(table)():  # absent tables leave older digests as they were
                document[key] = table.model_dump(mode="json")
        if self.execution != "local" or self.ray_address is not None:
            document |= {"execution": self.execution, "ray_address": self.ray_address}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """What a run records of it: names, the file and the digest, never a secret value."""
        return {
            "path": str(self.path) if self.path is not None else None,
            "digest": self.digest(),
            "model": self.model,
            "agents": str(self.agents_dir) if self.agents_dir else None,
            "providers": sorted(self.providers),
            "mcp_servers": sorted(self.mcp_servers),
        }


def _masked(fields: dict[str, Any]) -> dict[str, Any]:
    for key in ("headers", "env"):
        if key in fields:
            fields[key] = sorted(fields[key])
    return fields


def load_config(start: Path | None = None, *, path: Path | None = None) -> ProjectConfig:
    """The configuration in `path`, else in `$PODIUM_CONFIG`, else the nearest `podium.toml`,
    `pyproject.toml` with `[tool.podium]` or `.mcp.json` walking up from `start` (default: the
    current directory); defaults if there is none. SpecError lists every problem by key path."""
    chosen = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if chosen is None:
        chosen = find_config(start or Path.cwd())
        if chosen is None:
            return ProjectConfig(root=(start or Path.cwd()).resolve())
    chosen = chosen.expanduser().resolve()
    if not chosen.is_file():
        raise UsageError(f"configuration file {chosen} does not exist; create it or fix the path")
    return _load(chosen)


def recorded_config(record: Mapping[str, Any]) -> tuple[ProjectConfig | None, str | None]:
    """The configuration a run recorded (`ProjectConfig.record`), re-read from its file, and a
    one-line note if the file changed since; None if it was given in code. UsageError if the
    file is gone."""
    path = record.get("path")
    if not path:
        return None, None
    if not Path(path).is_file():
        raise UsageError(
            f"the run's configuration file {path} is gone; restore it, or give another one "
            f"(--config FILE or {CONFIG_ENV})"
        )
    config = _load(Path(path))
    if config.digest() == record.get("digest"):
        return config, None
    return config, f"configuration {path} changed since the run started; using the current file"


def find_config(start: Path) -> Path | None:
    """The nearest configuration file at or above `start`."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / PROJECT_FILE).is_file():
            return folder / PROJECT_FILE
        if (folder / PYPROJECT_FILE).is_file() and _podium_table(folder / PYPROJECT_FILE):
            return folder / PYPROJECT_FILE
        if (folder / MCP_FILE).is_file():
            return folder / MCP_FILE
    return None


def _load(file: Path) -> ProjectConfig:
    root, label = file.parent, _label(file)
    if file.name == MCP_FILE:
        data: dict[str, Any] = {"mcpServers": _read_mcp_json(file)}
    else:
        data = _read_toml(file) if file.name != PYPROJECT_FILE else _podium_table(file) or {}
    key = ".".join(filter(None, [label, "mcpServers"]))
    servers, problems = _servers(data.pop("mcpServers", None), file, key)
    if file.name != MCP_FILE and (root / MCP_FILE).is_file():
        found, more = _servers(_read_mcp_json(root / MCP_FILE), root / MCP_FILE, "mcpServers")
        servers = {**found, **servers}  # the project file wins on a clash
        problems += more
    known = ", ".join(_KEYS["top"])
    for name in sorted({"path", "root"} & data.keys()):  # set by the loader, not by the file
        where = ".".join(filter(None, [label, name]))
        problems.append(Problem(f"{file}: {where}", f"unknown key {name!r}; known keys: {known}"))
    try:
        config = ProjectConfig.model_validate({**data, "path": file, "root": root})
        _check_names(config, file, label)
    except ValidationError as exc:
        problems = problems_of(exc, file, label) + problems
        config = None
    if problems or config is None:
        raise SpecError(problems, source=str(file), subject="project configuration")
    return config.model_copy(update={"mcp_servers": servers})


def _servers(raw: Any, file: Path, key: str) -> tuple[dict[str, McpServer], list[Problem]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [Problem(f"{file}: {key}", "expected a table of servers by name")]
    servers: dict[str, McpServer] = {}
    problems: list[Problem] = []
    for name, fields in raw.items():
        where = f"{key}.{name}"
        if not isinstance(fields, Mapping):
            problems.append(Problem(f"{file}: {where}", "expected a table (command = …)"))
            continue
        try:
            server = McpServer.model_validate({**fields, "source": str(file)})
            if server.cwd is not None:  # relative to the file that says it
                server = server.model_copy(
                    update={"cwd": str((file.parent / server.cwd).resolve())}
                )
            servers[name] = server
        except ValidationError as exc:
            problems += problems_of(exc, file, where, kind="server")
            continue
        if not _valid_server_name(name):
            problems.append(Problem(f"{file}: {where}", "use 1-32 letters, digits, '_' or '-'"))
    return servers, problems


def _check_names(config: ProjectConfig, file: Path, prefix: str) -> None:
    """Provider names are model-string prefixes: they must not hide a built-in one."""
    for name in config.providers:
        where = ".".join(filter(None, [prefix, "providers", name]))
        if name in BUILTIN_PROVIDERS:
            message = f"{name!r} is a built-in provider; give this one another name"
            raise SpecError([Problem(f"{file}: {where}", message)], subject="project configuration")
        if not re.match(_NAME, name):
            message = "a provider name is 1-64 lowercase letters, digits, '_' or '-'"
            raise SpecError([Problem(f"{file}: {where}", message)], subject="project configuration")


def _valid_server_name(name: str) -> bool:
    return 0 < len(name) <= 32 and all(c.isalnum() or c in "_-" for c in name) and name.isascii()


def _label(file: Path) -> str:
    return "tool.podium" if file.name == PYPROJECT_FILE else ""


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(
            [Problem(str(file), f"not valid TOML: {exc}")], subject="project configuration"
        ) from None


def _podium_table(file: Path) -> dict[str, Any] | None:
    table = _read_toml(file).get("tool", {}).get("podium")
    return dict(table) if isinstance(table, dict) else None


def _read_mcp_json(file: Path) -> Any:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(
            [Problem(str(file), f"not valid JSON: {exc}")], subject="project configuration"
        ) from None
    if not isinstance(data, dict) or set(data) - {"mcpServers"}:
        extra = sorted(set(data) - {"mcpServers"}) if isinstance(data, dict) else []
        what = f"unknown key {extra[0]!r}; " if extra else ""
        message = f"{what}Podium reads only the `mcpServers` object of this file"
        raise SpecError([Problem(str(file), message)], subject="project configuration")
    return data.get("mcpServers", {})


# -- problems, by key path ---------------------------------------------------------------------

_USE_KEY_ENV = "Podium never reads a key from the file: set `api_key_env` to the variable's name"
_NO_APPROVALS = "an agent lists the tools it may call instead (tools: [mcp:<server>/<tool>])"
_OTHER_CLIENTS: dict[str, dict[str, str]] = {
    "top": {
        "servers": "Podium reads MCP servers from `mcpServers` (the shape of .mcp.json)",
        "mcp_servers": "write MCP servers under `mcpServers`",
        "mcp": "write MCP servers under `mcpServers`",
        "default_model": "the default model is `model`",
        "inputs": "Podium has no `inputs`; name the variables in `api_key_env` or `env`",
    },
    "provider": {
        "api_key": _USE_KEY_ENV,
        "apiKey": _USE_KEY_ENV,
        "baseURL": "use `base_url`",
        "api_base": "use `base_url`",
        "azure_endpoint": "use `endpoint`",
        "azure_deployment": "use `deployment`",
        "model": "name the model in the model string (<provider>:<model>)",
        "default_headers": "use `headers`",
    },
    "server": {
        "transport": 'use `type` ("stdio" or "http")',
        "serverUrl": "use `url`",
        "httpUrl": "use `url`",
        "disabled": "remove the server instead",
        "autoApprove": _NO_APPROVALS,
        "alwaysAllow": _NO_APPROVALS,
        "includeTools": _NO_APPROVALS,
        "excludeTools": _NO_APPROVALS,
        "trust": _NO_APPROVALS,
        "envFile": "set the variables in `env`",
    },
}
_FILE_KEYS = set(ProjectConfig.model_fields) - {"path", "root", "mcp_servers"} | {"mcpServers"}
_KEYS = {
    "top": sorted(_FILE_KEYS),  # what a file may say: not what the loader sets; servers by alias
    "secrets": sorted(SecretsConfig.model_fields),
    "policy": sorted(Policy.model_fields),
    "approve": sorted(ApprovalRules.model_fields),
    "network": sorted(NetworkPolicy.model_fields),
    "sandbox": sorted(SandboxPolicy.model_fields),
    "files": sorted(FilePolicy.model_fields),
    "routing": sorted(RoutingConfig.model_fields),
    "rule": sorted(RoutingRule.model_fields),
    "threads": sorted(ThreadsConfig.model_fields),
    "provider": sorted(set(ProviderConfig.model_fields)),
    "options": sorted(set(AgentOptions.model_fields) - {"provider", "tool_choice"}),
    "server": sorted(set(McpServer.model_fields) - {"source"}),
}


_POLICY_SECTIONS = ("approve", "network", "sandbox", "files")


def problems_of(
    exc: ValidationError, file: Path, prefix: str, *, kind: str | None = None
) -> list[Problem]:
    """One Problem per error, at `file: <key path>`, unknown keys with a did-you-mean or what
    Podium supports instead of another client's key."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in ("path", "root", "source")]
        if error["loc"] and error["loc"][0] in ("path", "root"):
            continue
        where = ".".join([prefix, *loc] if prefix else loc)
        problems.append(Problem(f"{file}: {where}", _message(error, loc, kind)))
    return problems


def _message(error: Any, loc: list[str], kind: str | None) -> str:
    if error["type"] == "extra_forbidden":
        key, scope = loc[-1], kind or _scope(loc)
        if key in _OTHER_CLIENTS.get(scope, {}):
            return f"unknown key {key!r}: {_OTHER_CLIENTS[scope][key]}"
        close = difflib.get_close_matches(key, _KEYS[scope], n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(_KEYS[scope])}"
        return f"unknown key {key!r}; {hint}"
    if error["type"] == "literal_error" and kind == "server" and loc == ["type"]:
        return 'Podium supports type = "stdio" or "http" (streamable HTTP), not SSE or others'
    return str(error["msg"]).removeprefix("Value error, ")


def _scope(loc: list[str]) -> str:
    if loc[0] == "policy":
        section = loc[1] if len(loc) > 2 else "policy"
        return section if section in _POLICY_SECTIONS else "policy"
    if loc[0] == "secrets":
        return "secrets"
    if loc[0] in ("routing", "threads"):
        return "rule" if loc[1:2] == ["rules"] and len(loc) > 3 else loc[0]
    if loc[0] == "providers" and len(loc) == 3:
        return "provider"
    return "options" if loc[0] == "providers" and len(loc) > 3 else "top"


__all__ = [
    "BUILTIN_PROVIDERS",
    "CONFIG_ENV",
    "McpServer",
    "ProjectConfig",
    "ProviderConfig",
    "SecretsConfig",
    "find_config",
    "load_config",
    "recorded_config",
]
