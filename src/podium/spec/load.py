"""Reading workflow documents (YAML or JSON) into plain dicts, with size, depth and syntax caps."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal, NoReturn

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, Event, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from podium.errors import Problem, SpecError, UsageError
from podium.spec._numbers import long_integer, too_long
from podium.spec.model import Workflow
from podium.spec.validate import AgentNames, agent_references, validate_workflow

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 64

Format = Literal["yaml", "json"]
_SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class _Refused(Exception):
    """Raised inside the parsers; turned into a SpecError with the document's source."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(path, message)


def load_document(
    text: str | bytes, *, source: str, format: Format | None = None
) -> dict[str, Any]:
    """Parse a workflow document; every failure is a SpecError naming the line and the fix."""
    try:
        decoded = _decode(_encode(text) if isinstance(text, str) else text)
        return _parse(decoded, format or _sniff(decoded, source))
    except _Refused as exc:
        raise SpecError([exc.problem], source=source) from None


def read_document(path: str | os.PathLike[str], *, what: str = "workflow") -> dict[str, Any]:
    """Read and parse a workflow file (or, with `what`, another document: a plan file); a
    missing or unreadable file is a UsageError naming `what` it should have been."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DOCUMENT_BYTES:
                raise SpecError([_too_big(size).problem], source=str(file))
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except ValueError:  # a NUL byte in the path: no file system can hold it
        raise UsageError(f"{what} path {str(file)!r} contains a NUL byte; fix the path") from None
    except FileNotFoundError:
        raise UsageError(f"{what} file {file} does not exist; check the path") from None
    except IsADirectoryError:
        raise UsageError(
            f"{file} is a directory; pass the {what} as a .yaml or .json file"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot read {what} file {file}: {reason}; check the path") from None
    return load_document(data, source=str(file))


def _too_big(size: int) -> _Refused:
    return _Refused(
        "",
        f"document is {size:,} bytes; the limit is 1 MiB ({MAX_DOCUMENT_BYTES:,} bytes); "
        "split the workflow or move large content into files",
    )


def _encode(text: str) -> bytes:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _too_big(len(text))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Refused(
            "", f"not valid UTF-8: unpaired surrogate at character {exc.start}; save as UTF-8"
        ) from None


def _decode(data: bytes) -> str:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _too_big(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _Refused(
            f"line {line}", f"not valid UTF-8 at byte {exc.start}; save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _sniff(text: str, source: str) -> Format | None:
    """The format from the source's suffix; None means "try JSON if it looks like it, else YAML"."""
    return _SUFFIXES.get(PurePath(source).suffix.lower())


def _parse(text: str, format: Format | None) -> dict[str, Any]:
    if format == "json":
        return _top_level(_load_json(text))
    if format is None and text.lstrip().startswith("{"):
        try:
            return _top_level(_load_json(text))
        except _Refused as json_error:
            try:
                return _top_level(_load_yaml(text))
            except _Refused:
                raise json_error from None
    return _top_level(_load_yaml(text))


def _top_level(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise _Refused("", f"the document must be a mapping with name and steps, got {got}")
    return data


# --- YAML ---------------------------------------------------------------------------------------


def _refuse_at(node_or_event: Any, message: str) -> NoReturn:
    mark = node_or_event.start_mark
    raise _Refused(f"line {mark.line + 1}", message)


class _ComposerCaps(Composer):
    """Refuses anchors and aliases and caps nesting while nodes are composed (no deep recursion)."""

    _depth = 0
    peek_event: Callable[[], Event]  # provided by the parser this is mixed with

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            _refuse_at(event, f"YAML alias *{event.anchor} is not allowed; repeat the value")
        if (anchor := getattr(event, "anchor", None)) is not None:
            _refuse_at(event, f"YAML anchor &{anchor} is not allowed; remove it")
        if not isinstance(event, MappingStartEvent | SequenceStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            _refuse_at(event, f"nesting is deeper than {MAX_DEPTH} levels; flatten the document")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _StrictConstructor(SafeConstructor):
    """Refuses duplicate keys and keeps timestamps as text, so YAML reads like JSON."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key_node, ScalarNode) and key in seen:
                _refuse_at(key_node, f'duplicate key "{key}"; each key may appear once')
            if isinstance(key_node, ScalarNode):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_text(self, node: Node) -> Any:
        return self.construct_scalar(node)  # type: ignore[arg-type]

    def construct_integer(self, node: Node) -> Any:
        digits = len(str(node.value).lstrip("+-").replace("_", ""))
        if too_long(digits):
            _refuse_at(node, long_integer(digits))
        return self.construct_yaml_int(node)  # type: ignore[arg-type]


_StrictConstructor.add_constructor(  # type: ignore[type-var]  # the stub expects a Loader class
    "tag:yaml.org,2002:timestamp", _StrictConstructor.construct_text
)
_StrictConstructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:int", _StrictConstructor.construct_integer
)


try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser as _PyParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _PyParser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _PyParser.__init__(self)


class _Loader(_ComposerCaps, _Parser, _StrictConstructor, Resolver):
    """libyaml's event parser under Python's composer, so the caps above apply."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _ComposerCaps.__init__(self)
        _StrictConstructor.__init__(self)
        Resolver.__init__(self)


def _load_yaml(text: str) -> object:
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise _yaml_problem(exc) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: character {exc.character!r} is not allowed; remove it"
        raise _Refused(f"line {line}", message) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError) -> _Refused:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    if isinstance(exc, ComposerError):
        fix = "keep one workflow per file"
    elif isinstance(exc, ConstructorError):
        fix = "remove the tag or quote the value"
    else:
        fix = "check indentation and quoting there"
    return _Refused(where, f"invalid YAML: {what}; {fix}")


# --- JSON ---------------------------------------------------------------------------------------


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed, before duplicate keys are checked."""


@dataclass(frozen=True, slots=True)
class _LongInteger:
    """An integer too long to read, refused with its path once the path is known."""

    digits: int


def _integer(text: str) -> int | _LongInteger:
    digits = len(text.lstrip("-"))
    return _LongInteger(digits) if too_long(digits) else int(text)


def _load_json(text: str) -> object:
    _check_json_depth(text)
    try:
        parsed = json.loads(
            text, object_pairs_hook=_Pairs, parse_constant=_no_constant, parse_int=_integer
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _Refused(where, f"invalid JSON: {exc.msg}; fix the syntax there") from None
    return _dicts(parsed, "")


def _no_constant(name: str) -> NoReturn:
    raise _Refused("", f"{name} is not valid JSON; write a number or a string")


def _check_json_depth(text: str) -> None:
    """Count brackets outside strings, so deep nesting is refused before json recurses."""
    stripped = _JSON_STRING.sub('""', text)
    depth = 0
    for match in _JSON_BRACKET.finditer(stripped):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = stripped.count("\n", 0, match.start()) + 1
            message = f"nesting is deeper than {MAX_DEPTH} levels; flatten the document"
            raise _Refused(f"line {line}", message)


def _dicts(value: object, path: str) -> object:
    """Turn parsed pairs into dicts, refusing duplicate keys (depth is already capped)."""
    if isinstance(value, _Pairs):
        result: dict[str, Any] = {}
        for key, item in value:
            where = f"{path}.{key}" if path else key
            if key in result:
                raise _Refused(where, f'duplicate key "{key}"; each key may appear once')
            result[key] = _dicts(item, where)
        return result
    if isinstance(value, list):
        return [_dicts(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, _LongInteger):
        raise _Refused(path, long_integer(value.digits))
    return value


WorkflowSource = Workflow | Mapping[str, Any] | str | os.PathLike[str]


def load_workflow(source: WorkflowSource, *, agents: AgentNames | None = None) -> Workflow:
    """A validated Workflow from a model, a mapping, or a YAML/JSON file's path. With `agents`,
    the agent names its agent steps use are checked against that catalog (a model that is
    already a Workflow only needs that check)."""
    if isinstance(source, Workflow):
        refs = agent_references(enumerate(source.steps))
        problems = agents.check(refs) if agents is not None else []
        if problems:
            raise SpecError(problems)
        return source
    if isinstance(source, Mapping):
        return validate_workflow(dict(source), agents=agents)
    return validate_workflow(read_document(source), source=str(source), agents=agents)
