"""The Python builder gives the same validated model as the YAML and JSON files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podium.errors import SpecError, UsageError
from podium.spec import (
    Quorum,
    RetryPolicy,
    StepRef,
    WorkflowBuilder,
    load_document,
    validate_workflow,
)


def summarise(text: str, limit: int = 100) -> dict[str, Any]:
    return {"summary": text[:limit]}


YAML = f"""\
name: report
version: 2
description: fetch, summarise, store
max_concurrency: 4
on_failure: collect
inputs:
  url: {{type: string, description: page to read}}
  limit: {{type: integer, default: 100}}
steps:
  - id: fetch
    kind: http
    url: ${{{{ inputs.url }}}}
    retry: {{max_attempts: 3, initial_delay_seconds: 2}}
    timeout: 30s
  - id: mirror
    kind: http
    url: https://mirror.example/${{{{ inputs.url }}}}
    method: get
  - id: summarise
    kind: python
    call: {__name__}:summarise
    args: {{text: "${{{{ steps.fetch.output }}}}", limit: "${{{{ inputs.limit }}}}"}}
    needs: [fetch, mirror]
    join: {{quorum: 1}}
  - id: store
    kind: file
    op: write
    path: out/summary.json
    content: ${{{{ steps.summarise.output }}}}
    needs: summarise
  - id: announce
    kind: shell
    run: [echo, done]
    needs: [store]
    when: steps.store.status == 'succeeded'
"""


def built() -> WorkflowBuilder:
    flow = WorkflowBuilder(
        "report",
        version="2",
        description="fetch, summarise, store",
        max_concurrency=4,
        on_failure="collect",
    )
    flow.input("url", description="page to read").input("limit", "integer", default=100)
    fetch = flow.http(
        "fetch",
        "${{ inputs.url }}",
        retry=RetryPolicy(max_attempts=3, initial_delay_seconds=2),
        timeout="30s",
    )
    mirror = flow.http("mirror", "https://mirror.example/${{ inputs.url }}")
    summary = flow.python(
        "summarise",
        summarise,
        args={"text": "${{ steps.fetch.output }}", "limit": "${{ inputs.limit }}"},
        needs=[fetch, mirror],
        join=Quorum(quorum=1),
    )
    store = flow.file(
        "store", "write", "out/summary.json", "${{ steps.summarise.output }}", needs=summary
    )
    flow.shell(
        "announce", ["echo", "done"], needs=[store], when="steps.store.status == 'succeeded'"
    )
    return flow


def test_yaml_json_and_builder_give_equal_models() -> None:
    from_yaml = validate_workflow(load_document(YAML, source="w.yaml"))
    from_json = validate_workflow(load_document(json.dumps(built().to_dict()), source="w.json"))
    from_builder = built().build()
    assert from_yaml == from_json == from_builder
    assert from_builder.step("summarise").join == Quorum(quorum=1)


def test_callable_is_stored_by_import_path() -> None:
    step = built().to_dict()["steps"][2]
    assert step["call"] == f"{__name__}:summarise"


def test_step_refs_and_ids_are_interchangeable_in_needs() -> None:
    flow = WorkflowBuilder("w")
    a = flow.shell("a", "echo a")
    assert a == StepRef("a")
    assert str(a) == "a"
    flow.shell("b", "echo b", needs=a)
    flow.shell("c", "echo c", needs=["a", StepRef("b")])
    flow.shell("d", "echo d", needs=(ref for ref in [a]))
    steps = flow.to_dict()["steps"]
    assert [step.get("needs") for step in steps] == [None, ["a"], ["a", "b"], ["a"]]
    assert flow.build().step("c").needs == ["a", "b"]


def test_generic_step_and_omitted_fields() -> None:
    flow = WorkflowBuilder("w")
    flow.step("file", "read", op="read", path="in.txt")
    flow.file("write", "append", "log.txt", "line")
    assert flow.to_dict() == {
        "name": "w",
        "steps": [
            {"id": "read", "kind": "file", "op": "read", "path": "in.txt"},
            {"id": "write", "kind": "file", "op": "append", "path": "log.txt", "content": "line"},
        ],
    }


def test_to_dict_is_a_copy() -> None:
    flow = WorkflowBuilder("w")
    flow.shell("a", "echo")
    flow.to_dict()["steps"].clear()
    assert len(flow.build().steps) == 1


def test_same_id_twice_is_reported_by_validation() -> None:
    flow = WorkflowBuilder("w")
    flow.shell("a", "echo 1")
    flow.shell("a", "echo 2")
    with pytest.raises(SpecError) as excinfo:
        flow.build()
    assert excinfo.value.source == "WorkflowBuilder('w')"
    assert [str(p) for p in excinfo.value.problems] == [
        'steps[1].id: duplicate step id "a", also used by steps[0]; step ids must be unique'
    ]


def test_builder_problems_use_document_paths() -> None:
    flow = WorkflowBuilder("w")
    flow.shell("a", "echo", neds=["b"])
    flow.step("repeat", "b")
    with pytest.raises(SpecError) as excinfo:
        flow.build()
    assert [p.path for p in excinfo.value.problems] == ["steps[0].neds", "steps[1].kind"]


def test_local_function_cannot_be_called_by_name() -> None:
    def local() -> None:
        pass

    flow = WorkflowBuilder("w")
    with pytest.raises(UsageError, match="cannot be imported by name; define it at module level"):
        flow.python("a", local)
    with pytest.raises(UsageError, match="cannot be imported by name"):
        flow.python("b", lambda: None)


def test_python_call_by_registered_name() -> None:
    flow = WorkflowBuilder("w")
    flow.python("a", "summarise", args={"text": "x"})
    step = flow.build().steps[0]
    assert step.model_dump(include={"call", "args"}) == {"call": "summarise", "args": {"text": "x"}}
