"""Workflow specification: models, loading with caps, templating and validation."""

from podium.spec.builder import StepRef, WorkflowBuilder
from podium.spec.inputs import coerce_inputs, parse_input_pairs
from podium.spec.load import load_document, load_workflow, read_document
from podium.spec.model import (
    FileStep,
    HttpStep,
    InputSpec,
    PythonStep,
    Quorum,
    RetryPolicy,
    ShellStep,
    StepBase,
    Workflow,
)
from podium.spec.validate import validate_workflow

__all__ = [
    "FileStep",
    "HttpStep",
    "InputSpec",
    "PythonStep",
    "Quorum",
    "RetryPolicy",
    "ShellStep",
    "StepBase",
    "StepRef",
    "Workflow",
    "WorkflowBuilder",
    "coerce_inputs",
    "load_document",
    "load_workflow",
    "parse_input_pairs",
    "read_document",
    "validate_workflow",
]
