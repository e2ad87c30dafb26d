"""The agent catalog: `AgentSpec` and the loader for `agents/*.md` (YAML front matter + Markdown
instructions) and `agents/*.yaml` files from the project's folder and the user's, with
case-insensitive lookup that names the candidates when a reference is missing or ambiguous."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from podium.errors import Problem, SpecError, UsageError

USER_AGENTS_DIR = Path("~/.config/podium/agents")
"""The user's catalog folder; `AgentCatalog.load` reads it after the project's `agents/`."""

_TOOL_REF = r"^(mcp:[A-Za-z0-9_-]+(/[^\s/]+)?|[a-z][a-z0-9_]*)$"
_SUFFIXES = (".md", ".yaml", ".yml")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
_TIMEOUT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
TOOL_CHOICES = ("auto", "none", "required")


class _CallOptions(BaseModel):
    """The fields and checks `AgentOptions` and `AgentSpec` share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    seed: int | None = None
    top_p: float | None = Field(None, ge=0, le=1)
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1, max_length=4)
    tool_choice: str | None = Field(None, pattern=r"^[A-Za-z0-9_:/-]{1,128}$")
    parallel_tool_calls: bool | None = None
    timeout: float | None = Field(None, gt=0, le=86_400)
    provider: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]*$")
    stream: bool | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_up_to_four(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _TIMEOUT.match(value)
            if match is None:
                raise ValueError(f"{value!r} is not a duration; write seconds (30), 500ms, 30s, 2m")
            return float(match.group(1)) * _SECONDS[match.group(2)]
        return value

    @field_validator("stream")
    @classmethod
    def _no_forced_streaming(cls, value: bool | None) -> bool | None:
        if value is True:
            raise ValueError("only `stream: false` can be set (streaming is the default)")
        return value


class AgentOptions(_CallOptions):
    """How an agent's model is called. An agent file sets them as top-level keys; an `agent`
    step under `options:`, merged over the agent's (`merged`). None leaves a setting to the
    provider's defaults. `timeout` is the seconds of one model call; `provider` names a
    configured provider (the model string then names only the model)."""

    def merged(self, over: AgentOptions) -> AgentOptions:
        """These options with every setting `over` gives replacing this one's."""
        return self.model_copy(update=over.model_dump(exclude_none=True))


OPTION_FIELDS = tuple(_CallOptions.model_fields)


class AgentSpec(_CallOptions):
    """One agent. `model` is `provider:model` (None: the engine's default model applies; with a
    `provider` option it names only the model); `tools` holds built-in tool names,
    `mcp:<server>` (all its tools) or `mcp:<server>/<tool>`. The call options
    (`AgentOptions`'s fields) are top-level keys; `options` gathers them."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")
    model: str | None = Field(None, pattern=r"^\S+$")
    description: str = ""
    instructions: str = ""
    tools: list[Annotated[str, Field(pattern=_TOOL_REF)]] = Field(default_factory=list)
    output: dict[str, Any] | None = None
    fallbacks: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    source: str = ""

    @field_validator("model")
    @classmethod
    def _names_a_provider(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and ":" not in value and info.data.get("provider") is None:
            raise ValueError(
                f"{value!r} must be provider:model, such as openai:gpt-4o-mini, or set "
                "`provider:` to a configured provider and name only the model"
            )
        return value

    @field_validator("tools")
    @classmethod
    def _has_the_chosen_tool(cls, value: list[str], info: ValidationInfo) -> list[str]:
        check_tool_choice(info.data.get("tool_choice"), value)
        return value

    def without_fallbacks(self, blocked: Iterable[str]) -> AgentSpec:
        """The agent with the fallbacks named in `blocked` (case-insensitive, as references
        are) left out: an approval policy's blocked agents are never fallen back on."""
        names = {name.casefold() for name in blocked}
        kept = [f for f in self.fallbacks if f.casefold() not in names]
        return self if kept == self.fallbacks else self.model_copy(update={"fallbacks": kept})

    @property
    def options(self) -> AgentOptions:
        """The agent's call options (only the ones its file sets are not None)."""
        return AgentOptions.model_validate(self.model_dump(include=set(OPTION_FIELDS)))

    @field_validator("tools", "fallbacks", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("output")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


_FIELDS = sorted(set(AgentSpec.model_fields) - {"source"})


def check_tool_choice(choice: str | None, tools: Sequence[str]) -> None:
    """ValueError unless `choice` is auto, none, required or one of `tools`: a built-in name, an
    `mcp:` reference as written, or `<server>__<tool>` of an `mcp:<server>` the agent has."""
    if choice is None or choice in TOOL_CHOICES or choice in tools:
        return
    server, sep, tool = choice.partition("__")
    if sep and ({f"mcp:{server}", f"mcp:{server}/{tool}"} & set(tools)):
        return
    have = ", ".join(tools) or "none"
    raise ValueError(
        f"tool_choice {choice!r} is not one of the agent's tools ({have}); use auto, none, "
        "required or one of them"
    )


class AgentCatalog:
    """Agents by name. Lookups try the exact name, then a case-insensitive match."""

    def __init__(self, agents: Iterable[AgentSpec], *, searched: Sequence[Path] = ()) -> None:
        self._agents = {agent.name: agent for agent in agents}
        self.searched = tuple(searched)

    @classmethod
    def load(
        cls,
        project_dir: Path | None,
        user_dir: Path | None = USER_AGENTS_DIR,
        *,
        folder: Path | None = None,
    ) -> AgentCatalog:
        """Read `project_dir/agents` (or `folder`, the project configuration's agents folder)
        and `user_dir` (an agents folder itself; None skips it). The project's agent wins over
        a user agent whose name matches case-insensitively. Raise `SpecError` listing every
        problem in every file."""
        project = folder or (project_dir / "agents" if project_dir else None)
        folders = [project, user_dir]
        searched = [folder.expanduser() for folder in folders if folder is not None]
        agents: dict[str, AgentSpec] = {}
        problems: list[Problem] = []
        for folder in searched:
            found, folder_problems = _load_folder(folder)
            problems += folder_problems
            taken = {name.casefold() for name in agents}
            for agent in found:
                if agent.name.casefold() not in taken:
                    agents.setdefault(agent.name, agent)  # a duplicate is already a problem
        catalog = cls(agents.values(), searched=searched)
        problems += catalog._fallback_problems()
        if problems:
            raise SpecError(problems, source="agent catalog", subject="agent files")
        return catalog

    def names(self) -> list[str]:
        return sorted(self._agents, key=lambda name: (name.casefold(), name))

    def resolve(self, name: str) -> AgentSpec:
        """The agent called `name` (exact, else the only case-insensitive match)."""
        found, error = self._lookup(name)
        if found is None:
            raise UsageError(error)
        return found

    def check(self, names_with_paths: Iterable[tuple[str, str]]) -> list[Problem]:
        """A `Problem` at its path for every `(name, path)` reference that does not resolve."""
        problems = []
        for name, path in names_with_paths:
            found, error = self._lookup(name)
            if found is None:
                problems.append(Problem(path, error))
        return problems

    def _lookup(self, name: str) -> tuple[AgentSpec | None, str]:
        if (exact := self._agents.get(name)) is not None:
            return exact, ""
        matches = sorted(n for n in self._agents if n.casefold() == name.casefold())
        if len(matches) == 1:
            return self._agents[matches[0]], ""
        if matches:
            shown = ", ".join(repr(m) for m in matches)
            return None, f"agent name {name!r} is ambiguous: it matches {shown}; use the exact name"
        return None, self._missing(name)

    def _missing(self, name: str) -> str:
        where = ", ".join(str(folder) for folder in self.searched) or "no folder"
        if not self._agents:
            return (
                f"unknown agent {name!r}: no agents are defined (looked in {where}); add "
                f"agents/{name}.md with YAML front matter (name: {name})"
            )
        folded = {n.casefold(): n for n in self._agents}
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
        hint = f"did you mean {folded[close[0]]!r}? " if close else ""
        shown = ", ".join(self.names())
        return f"unknown agent {name!r}; {hint}available: {shown} (looked in {where})"

    def _fallback_problems(self) -> list[Problem]:
        problems = []
        for agent in self._agents.values():
            for index, fallback in enumerate(agent.fallbacks):
                found, error = self._lookup(fallback)
                if found is not None and found.name == agent.name:
                    error = f"agent {agent.name!r} lists itself as a fallback; remove it"
                if error:
                    problems.append(Problem(agent.source, f"fallbacks[{index}]: {error}"))
        return problems


@dataclass(frozen=True, slots=True)
class _Entry:
    """One agent's raw fields, the YAML node they came from, and where that is in the file."""

    data: Any
    node: yaml.Node | None
    file: Path
    offset: int  # file line (0-based) where the YAML text starts
    label: str = ""  # "agents[2]" for an item of a top-level `agents:` list


class _FileProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _load_folder(folder: Path) -> tuple[list[AgentSpec], list[Problem]]:
    agents: list[AgentSpec] = []
    problems: list[Problem] = []
    for file in _agent_files(folder):
        try:
            entries = _read_entries(file)
        except _FileProblem as bad:
            problems.append(bad.problem)
            continue
        for entry in entries:
            agent, entry_problems = _validate(entry)
            problems += entry_problems
            agents += [agent] if agent is not None else []
    return agents, problems + _duplicates(agents, folder)


def _agent_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in _SUFFIXES
        and not path.name.startswith(".")
        and path.name.lower() != "readme.md"
        and path.is_file()
    )


def _read_entries(file: Path) -> list[_Entry]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _FileProblem(Problem(f"{file}:1", f"cannot read the file: {exc}")) from None
    if file.suffix.lower() == ".md":
        return [_markdown_entry(file, text)]
    data, node = _parse_yaml(text, file, 0)
    if isinstance(data, dict) and "agents" in data:
        return _list_entries(file, data, node)
    return [_Entry(data, node, file, 0)]


def _markdown_entry(file: Path, text: str) -> _Entry:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        why = "no YAML front matter; start the file with a line `---`, the agent's fields"
        raise _FileProblem(Problem(f"{file}:1", f"{why} (name: …), then another `---` line"))
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        message = "the front matter is not closed; add a `---` line after the agent's fields"
        raise _FileProblem(Problem(f"{file}:1", message))
    data, node = _parse_yaml("".join(lines[1:end]), file, 1)
    body = "".join(lines[end + 1 :]).strip()
    if isinstance(data, dict) and body:
        if "instructions" in data:
            where = f"{file}:{_line(node, ('instructions',), 1)}"
            message = "instructions are given both in the front matter and as the body; keep one"
            raise _FileProblem(Problem(where, message))
        data["instructions"] = body
    return _Entry(data, node, file, 1)


def _list_entries(file: Path, data: dict[Any, Any], node: yaml.Node | None) -> list[_Entry]:
    items = data["agents"]
    if set(data) != {"agents"} or not isinstance(items, list):
        message = "a file with `agents:` must hold only that key, a list of agents"
        raise _FileProblem(Problem(f"{file}:{_line(node, ('agents',), 0)}", message))
    nodes = _value(node, "agents")
    return [
        _Entry(item, _value(nodes, index), file, 0, f"agents[{index}]")
        for index, item in enumerate(items)
    ]


def _parse_yaml(text: str, file: Path, offset: int) -> tuple[Any, yaml.Node | None]:
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = offset + (mark.line if mark is not None else 0) + 1
        detail = getattr(exc, "problem", None) or str(exc)
        raise _FileProblem(Problem(f"{file}:{line}", f"invalid YAML: {detail}")) from None


def _validate(entry: _Entry) -> tuple[AgentSpec | None, list[Problem]]:
    if not isinstance(entry.data, dict):
        where = f"{entry.file}:{_line(entry.node, (), entry.offset)}"
        what = f"{entry.label}: " if entry.label else ""
        return None, [Problem(where, f"{what}expected a mapping of agent fields (name: …)")]
    problems = []
    if "source" in entry.data:
        problems.append(_problem(entry, ("source",), "unknown field 'source' (the loader sets it)"))
    try:
        agent = AgentSpec.model_validate({**entry.data, "source": str(entry.file)})
    except ValidationError as exc:
        problems += [_problem(entry, err["loc"], _message(err)) for err in exc.errors()]
        return None, sorted(problems, key=lambda p: int(p.path.rpartition(":")[2]))
    return (agent if not problems else None), problems


_PATTERN_HINTS = {
    "name": "must not start or end with whitespace",
    "model": "must be provider:model, such as openai:gpt-4o-mini or scripted:demo",
    "provider": 'must be a provider name: lowercase letters, digits, "_" and "-", starting with a '
    "letter (openai, anthropic or one configured in podium.toml [providers])",
    "tool_choice": 'must be auto, none, required or a tool name (letters, digits, "_", ":", "/" '
    'and "-"; at most 128 characters)',
    "tools": "not a tool reference; use a built-in tool name (read_file), mcp:<server> or "
    "mcp:<server>/<tool>",
}


def _message(error: Any) -> str:
    loc = error["loc"]
    field = str(loc[-1]) if loc else ""
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(field, _FIELDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(_FIELDS)}"
        return f"unknown field {field!r}; {hint}"
    if error["type"] == "missing":
        return f"missing required field {field!r}"
    if error["type"] == "string_pattern_mismatch" and loc and loc[0] in _PATTERN_HINTS:
        return _PATTERN_HINTS[str(loc[0])]
    return str(error["msg"]).removeprefix("Value error, ")


def _problem(entry: _Entry, loc: Sequence[str | int], message: str) -> Problem:
    """`file:line` and the message, prefixed with the field's path unless it names the field."""
    named = message.startswith(("unknown field", "missing required"))
    parts = [entry.label] if entry.label else []
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in (loc[:-1] if named else loc)]
    label = ".".join(parts).replace(".[", "[")
    line = _line(entry.node, loc, entry.offset)
    return Problem(f"{entry.file}:{line}", f"{label}: {message}" if label else message)


def _duplicates(agents: list[AgentSpec], folder: Path) -> list[Problem]:
    first: dict[str, AgentSpec] = {}
    problems = []
    for agent in agents:
        if (earlier := first.setdefault(agent.name, agent)) is not agent:
            message = f"agent {agent.name!r} is defined twice in {folder}: also in {earlier.source}"
            problems.append(Problem(agent.source, f"{message}; rename or remove one"))
    return problems


def _line(node: yaml.Node | None, loc: Sequence[str | int], offset: int) -> int:
    """The 1-based file line of the deepest key (or list item) on `loc` that exists."""
    line = node.start_mark.line if node is not None else 0
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        line, node = found
    return offset + line + 1


def _child(node: yaml.Node | None, part: str | int) -> tuple[int, yaml.Node] | None:
    """The line of `part` in `node` (a key's own line) and the node holding its value."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return key_node.start_mark.line, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item.start_mark.line, item
    return None


def _value(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    found = _child(node, part)
    return found[1] if found is not None else None
