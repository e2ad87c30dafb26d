"""The HTTP API fuzzed from its own OpenAPI document, against a real `podium serve` process:
requests drawn for every operation, valid and not, with path parameters pointing at a real run
and its steps. No request may make the server fail (a 5xx); every answer's status and body must
be what the document says; and the server must still stop cleanly afterwards. (The SSE routes
stream until the client goes: the SSE tests cover them.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from .process import Served, serve, stop

WORKFLOW = """\
name: fuzzed
steps:
  - {id: build, kind: file, op: write, path: built.txt, content: ok}
  - {id: release, kind: shell, run: [cat, built.txt], needs: [build], approval: required}
"""
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 400  # requests per mode, spread over the ~26 operations


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    workspace = tmp_path_factory.mktemp("fuzzed")
    (workspace / "fuzzed.yaml").write_text(WORKFLOW)
    served = serve(workspace)
    try:
        run_id = served.call("POST", "/runs", {"path": "fuzzed.yaml"})["run_id"]
        served.wait_for(run_id, "waiting")
        yield served, run_id
    finally:
        code = stop(served)
    log = served.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_server_fail(api: tuple[Served, str], mode: GenerationMode) -> None:
    served, run_id = api
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    failures: list[str] = []
    operations = [
        result.ok() for result in schema.exclude(path_regex="events$").get_all_operations()
    ]
    assert len(operations) > 20

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(data=st.data())
    def exercise(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy(mode))
        parameters = case.path_parameters or {}
        if "run_id" in parameters:
            parameters["run_id"] = run_id
        if "step_id" in parameters:
            parameters["step_id"] = "release"
        try:
            case.call_and_validate(base_url=served.url, checks=CHECKS, timeout=30)
        except Exception as error:  # every operation is tried: gather what fails, then report
            failures.append(f"{case.method} {case.formatted_path}: {error}")

    exercise()
    assert not failures, "\n".join(failures)
