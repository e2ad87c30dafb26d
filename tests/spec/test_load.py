"""Reading YAML/JSON documents: formats, caps (size, depth, anchors), and error locations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium.errors import Problem, SpecError, UsageError
from podium.spec.load import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    load_document,
    load_workflow,
    read_document,
)

YAML = """\
name: hello
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    kind: shell
    run: echo hello ${{ inputs.who }}
"""
DOC = {
    "name": "hello",
    "inputs": {"who": {"type": "string", "default": "world"}},
    "steps": [{"id": "greet", "kind": "shell", "run": "echo hello ${{ inputs.who }}"}],
}


def only_problem(excinfo: pytest.ExceptionInfo[SpecError]) -> Problem:
    assert len(excinfo.value.problems) == 1, excinfo.value
    return excinfo.value.problems[0]


def refused(text: str | bytes, source: str = "w.yaml", **kwargs: object) -> Problem:
    with pytest.raises(SpecError) as excinfo:
        load_document(text, source=source, **kwargs)  # type: ignore[arg-type]
    assert excinfo.value.source == source
    return only_problem(excinfo)


def nested(depth: int) -> str:
    return json.dumps({"name": "x", "deep": json.loads("[" * (depth - 1) + "]" * (depth - 1))})


# --- formats ------------------------------------------------------------------------------------


def test_yaml_and_json_give_the_same_document() -> None:
    assert load_document(YAML, source="w.yaml") == DOC
    assert load_document(json.dumps(DOC), source="w.json") == DOC


@pytest.mark.parametrize("source", ["w.yml", "W.YAML", "<stdin>", "api"])
def test_yaml_is_read_from_suffix_or_sniffed(source: str) -> None:
    assert load_document(YAML.encode(), source=source) == DOC


def test_json_is_sniffed_without_a_suffix() -> None:
    assert load_document(json.dumps(DOC), source="<stdin>") == DOC


def test_yaml_flow_mapping_without_suffix_falls_back_to_yaml() -> None:
    assert load_document("{name: x, steps: []}", source="api") == {"name": "x", "steps": []}


def test_explicit_format_wins_over_suffix() -> None:
    problem = refused("name: x", source="w.yaml", format="json")
    assert problem.path == "line 1, column 1"
    assert "invalid JSON" in problem.message


def test_utf8_bom_is_accepted() -> None:
    assert load_document("\ufeff" + YAML, source="w.yaml") == DOC


def test_yaml_timestamps_stay_text() -> None:
    assert load_document("name: x\nwhen: 2024-01-02\n", source="w.yaml")["when"] == "2024-01-02"


# --- caps ---------------------------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_document_over_1_mib_is_refused_before_parsing(as_bytes: bool) -> None:
    text = "name: [" + "x" * MAX_DOCUMENT_BYTES  # also broken YAML: the size check comes first
    problem = refused(text.encode() if as_bytes else text)
    assert problem.path == ""
    assert "the limit is 1 MiB" in problem.message


def test_document_of_exactly_1_mib_is_read() -> None:
    text = "name: x\npad: " + "x" * (MAX_DOCUMENT_BYTES - 14) + "\n"
    assert len(text.encode()) == MAX_DOCUMENT_BYTES
    assert load_document(text, source="w.yaml")["name"] == "x"


@pytest.mark.parametrize("source", ["w.json", "w.yaml"])
def test_nesting_depth_64_is_accepted(source: str) -> None:
    assert load_document(nested(MAX_DEPTH), source=source)["name"] == "x"


@pytest.mark.parametrize("source", ["w.json", "w.yaml"])
def test_nesting_depth_65_is_refused(source: str) -> None:
    problem = refused(nested(MAX_DEPTH + 1), source=source)
    assert problem.path == "line 1"
    assert "nesting is deeper than 64 levels" in problem.message


@pytest.mark.timeout(5)
@pytest.mark.parametrize("source", ["w.json", "w.yaml"])
def test_pathological_nesting_is_refused_without_recursion(source: str) -> None:
    problem = refused("[" * 500_000 + "]" * 500_000, source=source)
    assert problem.path.startswith("line 1")
    # Podium refuses it with one of its own messages, quickly and without a RecursionError. For
    # YAML which one depends on the parser: a PyYAML with its own flow-depth cap (6.0.4 and later)
    # hits that while reading ahead, before Podium's count reaches 65, and Podium reports it as a
    # syntax error. The parser's own words are not checked.
    if source == "w.json":
        assert "nesting is deeper than 64 levels" in problem.message
    else:
        assert problem.message.startswith(("nesting is deeper than 64 levels", "invalid YAML: "))


def test_brackets_inside_json_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"name": "x", "s": "[[[{{" * 100, "t": 'a "quoted" \\ ['})
    assert load_document(text, source="w.json")["name"] == "x"


def test_yaml_anchor_is_refused_with_its_line() -> None:
    problem = refused("name: x\nbase: &common {a: 1}\n")
    assert problem.path == "line 2"
    assert "YAML anchor &common is not allowed" in problem.message


def test_yaml_alias_is_refused_with_its_line() -> None:
    problem = refused("name: x\nsteps:\n  - *missing\n")
    assert problem.path == "line 3"
    assert "YAML alias *missing is not allowed" in problem.message


@pytest.mark.timeout(5)
def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    problem = refused("\n".join(lines))
    assert problem.path == "line 1"
    assert "anchor &a0" in problem.message


# --- encoding and syntax ------------------------------------------------------------------------


def test_invalid_utf8_names_the_byte() -> None:
    problem = refused(b"name: x\nrun: caf\xe9\n")
    assert problem.path == "line 2"
    assert "not valid UTF-8 at byte 16" in problem.message


def test_unpaired_surrogate_in_text_is_refused() -> None:
    problem = refused("name: \udcff")
    assert "not valid UTF-8" in problem.message


def test_duplicate_yaml_key_is_refused_with_its_line() -> None:
    problem = refused("name: x\nsteps:\n  - id: a\n    id: b\n")
    assert problem.path == "line 4"
    assert 'duplicate key "id"' in problem.message


def test_duplicate_json_key_is_refused_with_its_path() -> None:
    problem = refused('{"name": "x", "steps": [{"id": "a", "id": "b"}]}', source="w.json")
    assert problem.path == "steps[0].id"
    assert 'duplicate key "id"' in problem.message


def test_yaml_syntax_error_has_line_and_column() -> None:
    problem = refused("name: x\nsteps: [a, b\n")
    assert problem.path.startswith("line ")
    assert "invalid YAML" in problem.message


def test_json_syntax_error_has_line_and_column() -> None:
    problem = refused('{\n  "name": "x",\n}', source="w.json")
    assert problem.path == "line 3, column 1"
    assert "invalid JSON" in problem.message


def test_two_yaml_documents_are_refused() -> None:
    problem = refused("name: x\n---\nname: y\n")
    assert "keep one workflow per file" in problem.message


def test_unsafe_yaml_tag_is_refused() -> None:
    problem = refused("name: !!python/object/apply:os.system [ls]\n")
    assert "remove the tag" in problem.message


def test_json_nan_is_refused() -> None:
    assert "NaN is not valid JSON" in refused('{"name": NaN}', source="w.json").message


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "got a list"), ("", "got an empty document"), ("hello", "got a str")],
)
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    problem = refused(text)
    assert problem.path == ""
    assert f"must be a mapping with name and steps, {got}" in problem.message


# --- files --------------------------------------------------------------------------------------


def test_read_document_uses_the_suffix(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(json.dumps(DOC))
    (tmp_path / "w.yaml").write_text(YAML)
    assert read_document(tmp_path / "w.json") == read_document(tmp_path / "w.yaml") == DOC


def test_load_workflow_validates(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(YAML)
    assert load_workflow(tmp_path / "w.yaml").steps[0].id == "greet"


def test_missing_file_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.yaml does not exist"):
        read_document(tmp_path / "nope.yaml")


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        read_document(tmp_path)


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(5 * MAX_DOCUMENT_BYTES)  # sparse: 5 MiB of NUL bytes
    with pytest.raises(SpecError) as excinfo:
        read_document(path)
    assert excinfo.value.source == str(path)
    assert "document is 5,242,880 bytes" in only_problem(excinfo).message
