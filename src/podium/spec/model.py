"""The workflow model: steps of each kind, retry policy, joins, inputs. Validated by pydantic."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from podium.agents import AgentOptions
from podium.spec._fields import Budget as Budget
from podium.spec._fields import Quorum as Quorum
from podium.spec._fields import RetryPolicy as RetryPolicy
from podium.spec._fields import _Frozen, _no_nul
from podium.spec._fields import parse_duration as parse_duration
from podium.spec.answers import answer_problem, schema_problem
from podium.spec.execution import Execution, ray_problem
from podium.spec.policy import Policy

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$"  # "." only in plan children's ids

MAX_STEPS = 10_000
MAX_ITERATIONS = 10_000  # a loop step's max_iterations
MODEL_EXAMPLES = "openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest or scripted:demo.yaml"
DEFAULT_OUTPUT_LIMIT_BYTES = 1024 * 1024


JoinSpec = Literal["all", "any"] | Quorum
OnFailure = Literal["fail_fast", "collect"]
OutputSpec = Literal["text", "json"] | dict[str, Any]


class StepBase(_Frozen):
    """Fields every step kind shares. `templated` names the fields rendered at start time."""

    templated: ClassVar[tuple[str, ...]] = ()
    default_idempotent: ClassVar[bool] = False

    id: str = Field(pattern=STEP_ID_PATTERN)
    name: str | None = None
    needs: list[str] = Field(default_factory=list)
    join: JoinSpec = "all"
    on_failure: OnFailure | None = None
    allow_failure: bool = False
    allow_skipped: bool = False
    when: str | None = None
    approval: str | None = None  # "required", or a condition: a person approves it first
    # true: untrusted text (http, agent, plan, workflow outputs) may reach its command, url
    # host or path without a person approving it first (core/taint.py)
    allow_untrusted: bool = False
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout: float | None = Field(None, gt=0, le=7 * 86_400)
    idempotent: bool | None = None
    expected_seconds: float = Field(1.0, ge=0, le=30 * 86_400)
    output: OutputSpec = "text"
    # where its attempts run: `local` (this process) or `ray` (spec/execution.py); None: the
    # workflow's default, else the project's
    execution: Execution | None = None

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("timeout", "expected_seconds", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("approval", mode="before")
    @classmethod
    def _approval(cls, value: Any) -> Any:
        """`true` is `required`, `false` is no approval; any other text is a condition."""
        if isinstance(value, bool):
            return "required" if value else None
        if isinstance(value, str) and not value.strip():
            raise ValueError("approval must be `required` or a condition such as ${{ … }}")
        return value

    @model_validator(mode="after")
    def _runs_where_it_can(self) -> StepBase:
        if self.execution == "ray" and (problem := ray_problem(getattr(self, "kind", ""))):
            raise ValueError(problem)
        return self

    @property
    def is_idempotent(self) -> bool:
        return self.default_idempotent if self.idempotent is None else self.idempotent

    @property
    def display_name(self) -> str:
        return self.name or self.id


class ShellStep(StepBase):
    """Runs a program. `run` is split into argv (no shell) unless `shell: sh|bash` is given."""

    templated: ClassVar[tuple[str, ...]] = ("run", "env", "cwd", "stdin")
    kind: Literal["shell"] = "shell"
    run: str | list[str]
    shell: Literal["sh", "bash"] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    stdin: str | None = None
    # engine environment variables passed in (the sandbox's environment is otherwise empty)
    secrets: list[str] = Field(default_factory=list)
    # true (the default): run in bubblewrap (steps/sandbox.py); false: the engine's environment,
    # network and files, shown as `sandbox: off`
    sandbox: bool = True

    @field_validator("secrets")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(
                    f"secret {name!r} is not an environment variable name (letters, digits, _)"
                )
        return value

    @field_validator("run")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("run must name a command")
        return _no_nul(value)

    @field_validator("cwd", "env")
    @classmethod
    def _os_text(cls, value: Any) -> Any:
        return _no_nul(value)


class PythonStep(StepBase):
    """Calls a registered name or an importable `package.module:function` with keyword `args`."""

    templated: ClassVar[tuple[str, ...]] = ("args",)
    kind: Literal["python"] = "python"
    call: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class FileStep(StepBase):
    """Reads, writes or appends a file inside the run's workspace."""

    templated: ClassVar[tuple[str, ...]] = ("path", "content")
    kind: Literal["file"] = "file"
    op: Literal["read", "write", "append"]
    path: str = Field(min_length=1)
    content: Any = None

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.op != "append"

    @field_validator("path")
    @classmethod
    def _os_path(cls, value: str) -> str:
        return _no_nul(value)

    @model_validator(mode="after")
    def _content_for_writes(self) -> FileStep:
        if self.op in ("write", "append") and self.content is None:
            raise ValueError(f"op {self.op} needs content")
        if self.op == "read" and self.content is not None:
            raise ValueError("op read takes no content")
        return self


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class HttpStep(StepBase):
    """Sends one HTTP request; a 2xx (or a listed `expect_status`) is success."""

    templated: ClassVar[tuple[str, ...]] = ("url", "headers", "body", "query")
    kind: Literal["http"] = "http"
    url: str = Field(min_length=1)
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    expect_status: list[int] | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in ("GET", "HEAD", "PUT", "DELETE")


class ContextLimits(_Frozen):
    """How much of the dependencies' outputs an agent step sees (SPEC F6)."""

    max_chars_per_dependency: int = Field(4000, ge=100, le=1_000_000)
    max_dependencies: int = Field(12, ge=1, le=1000)
    max_total_chars: int = Field(16_000, ge=100, le=4_000_000)


class HistoryMessage(_Frozen):
    """An earlier message of a thread's conversation (`podium ask`), sent before the prompt."""

    role: Literal["user", "assistant"]
    content: str


class AgentStep(StepBase):
    """Asks a catalog agent: its instructions, this prompt and the dependencies' outputs go in;
    the agent may call its tools for up to `max_turns` model calls; its answer is the output.
    `options` are merged over the agent's own (the step's win); its `timeout` is one model
    call's, the step's `timeout` the whole step's."""

    templated: ClassVar[tuple[str, ...]] = ("prompt",)
    default_idempotent: ClassVar[bool] = True
    kind: Literal["agent"] = "agent"
    agent: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1)
    options: AgentOptions | None = None  # before `model`, whose check reads it
    model: str | None = Field(None, pattern=r"^\S+$")
    context: Literal["auto", "none"] | list[str] = "auto"
    context_limits: ContextLimits = Field(default_factory=ContextLimits)
    max_turns: int = Field(8, ge=1, le=100)
    max_reasks: int = Field(2, ge=0, le=10)
    history: list[HistoryMessage] = Field(default_factory=list)

    @field_validator("model")
    @classmethod
    def _model_names_a_provider(cls, value: str | None, info: ValidationInfo) -> str | None:
        options = info.data.get("options")
        provider = options.provider if isinstance(options, AgentOptions) else None
        if value is not None and provider is None and ":" not in value:
            raise ValueError(
                f"model {value!r} names no provider: write provider:model, such as "
                f"{MODEL_EXAMPLES}, or set `options.provider` to a configured provider"
            )
        return value


# the kinds a planner may generate (a plan step's `kinds` chooses among them); a kind added here
# needs its fields in spec/plan.py KIND_FIELDS
PlanChildKind = Literal["agent", "shell", "http", "file", "workflow"]
PLAN_CHILD_KINDS: tuple[str, ...] = get_args(PlanChildKind)
_AGENTS_ONLY: tuple[PlanChildKind, ...] = ("agent",)


class PlanStep(StepBase):
    """A supervisor agent turns `goal` into a plan of agent steps that run as children
    (`<this id>.<child id>`) through the same scheduler; see SPEC F7."""

    templated: ClassVar[tuple[str, ...]] = ("goal",)
    default_idempotent: ClassVar[bool] = True
    kind: Literal["plan"] = "plan"
    goal: str = Field(min_length=1)
    planner: str = Field("planner", min_length=1)
    agents: list[str] | None = None
    mode: Literal["auto", "sequential", "parallel", "swarm"] = "auto"
    confirm: bool = False
    max_replans: int = Field(2, ge=0, le=10)
    max_plan_attempts: int = Field(3, ge=1, le=10)
    max_children: int = Field(30, ge=1, le=500)
    replan: Literal["replace", "append"] = "replace"
    aggregator: str | None = None
    verifier: str | None = None
    patterns: list[str] = Field(default_factory=list)
    context_limits: ContextLimits = Field(default_factory=ContextLimits)
    kinds: list[PlanChildKind] = Field(default_factory=lambda: list(_AGENTS_ONLY), min_length=1)

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Choice(_Frozen):
    """A human step's answer is one of these options."""

    choice: list[Any] = Field(min_length=1, max_length=100)


class TimeoutDefault(_Frozen):
    """No answer in time: the step succeeds with this value instead."""

    default: Any


class HumanStep(StepBase):
    """Asks a person (`prompt`, templated) and waits, parked, for `podium answer RUN STEP VALUE`:
    free text, a value checked against a JSON Schema, or one of `{choice: [...]}`. The answer is
    the step's output. With `timeout`, no answer by then fails the step or, with
    `on_timeout: {default: VALUE}`, answers it with the default."""

    templated: ClassVar[tuple[str, ...]] = ("prompt",)
    default_idempotent: ClassVar[bool] = True
    kind: Literal["human"] = "human"
    prompt: str = Field(min_length=1)
    input: Literal["text"] | Choice | dict[str, Any] = "text"
    on_timeout: Literal["fail"] | TimeoutDefault = "fail"

    @model_validator(mode="after")
    def _answerable(self) -> HumanStep:
        problem = schema_problem(self.input) if isinstance(self.input, dict) else None
        if problem is not None:
            raise ValueError(f"input is not a JSON Schema: {problem}")
        if isinstance(self.on_timeout, TimeoutDefault):
            problem = answer_problem(self.input, self.on_timeout.default)
            if problem is not None:
                raise ValueError(f"on_timeout.default does not answer the step: {problem}")
        return self


class WorkflowStep(StepBase):
    """Runs another workflow as a child run: `workflow` is a file relative to the run's
    workspace or a registered name (`Engine(workflows=…)`, else `workflows/<name>.yaml` in the
    workspace); `inputs` (templated) are the child's inputs; `budget` is the child's own,
    further capped by what the run tree has left. The child's end is the step's end: its
    outputs (every top-level step's output by id) or its failure."""

    templated: ClassVar[tuple[str, ...]] = ("inputs",)
    default_idempotent: ClassVar[bool] = True
    kind: Literal["workflow"] = "workflow"
    workflow: str = Field(min_length=1, max_length=1000)
    inputs: dict[str, Any] = Field(default_factory=dict)
    budget: Budget | None = None

    @field_validator("workflow")
    @classmethod
    def _os_path(cls, value: str) -> str:
        return _no_nul(value)


_ATTEMPTLESS: dict[str, Any] = {"retry": RetryPolicy(), "timeout": None, "output": "text"}


class LoopStep(StepBase):
    """Repeats its body (`steps`, any kinds, `needs` only within the body) as iterations of
    children `<this id>.<n>.<body id>`, until `until` holds after an iteration or
    `max_iterations` ran. A body step reads `loop.iteration` (1-based) and
    `loop.previous.<body id>.output`; `steps.<body id>` is this iteration's step. The output is
    the last iteration's outputs by body id; `steps.<this id>.iterations[n]` holds each one."""

    default_idempotent: ClassVar[bool] = True
    kind: Literal["loop"] = "loop"
    max_iterations: int | None = Field(None, ge=1, le=MAX_ITERATIONS, validate_default=True)
    until: str | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("max_iterations")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        if value is None:
            raise ValueError(
                f"a loop needs a bound: set max_iterations (1 to {MAX_ITERATIONS:,}); `until` "
                "alone could repeat forever"
            )
        return value

    @field_validator("until")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("until must be a condition such as ${{ steps.check.output.ok }}")
        return value

    @model_validator(mode="after")
    def _no_attempt_fields(self) -> LoopStep:
        """A loop runs no attempt of its own: what shapes an attempt belongs on body steps."""
        given = [
            name
            for name in ("retry", "timeout", "output")
            if name in self.model_fields_set and getattr(self, name) != _ATTEMPTLESS[name]
        ]
        if given:
            raise ValueError(
                f"{' and '.join(given)} do not apply to a loop step (it runs no attempt of its "
                "own); set them on the body's steps"
            )
        return self

    @property
    def bound(self) -> int:
        """`max_iterations`, which validation guarantees is set."""
        assert self.max_iterations is not None
        return self.max_iterations


Step = Annotated[
    ShellStep
    | PythonStep
    | FileStep
    | HttpStep
    | AgentStep
    | PlanStep
    | HumanStep
    | WorkflowStep
    | LoopStep,
    Field(discriminator="kind"),
]
LoopStep.model_rebuild()
STEP_TYPES: dict[str, type[StepBase]] = {
    "shell": ShellStep,
    "python": PythonStep,
    "file": FileStep,
    "http": HttpStep,
    "agent": AgentStep,
    "plan": PlanStep,
    "human": HumanStep,
    "workflow": WorkflowStep,
    "loop": LoopStep,
}
PLANNED_KINDS: tuple[str, ...] = ()

InputType = Literal["string", "integer", "number", "boolean", "object", "array", "secret"]


class InputSpec(_Frozen):
    type: InputType = "string"
    default: Any = None
    required: bool | None = None
    description: str = ""
    # a `secret` input: the environment variable a process that did not submit the run reads
    # its value from (default: the input's name in upper case); the run records a placeholder
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _env_for_secrets(self) -> InputSpec:
        if self.env is not None and self.type != "secret":
            raise ValueError("`env` applies to an input of `type: secret` only")
        return self

    @property
    def is_required(self) -> bool:
        return self.default is None if self.required is None else self.required


class Workflow(_Frozen):
    """A named, versioned graph of steps with typed inputs."""

    name: str = Field(min_length=1, max_length=200)
    version: str = "1"
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    max_concurrency: int | None = Field(None, ge=1, le=100_000)
    on_failure: OnFailure = "fail_fast"
    output_limit_bytes: int = Field(DEFAULT_OUTPUT_LIMIT_BYTES, ge=1024, le=64 * 1024 * 1024)
    budget: Budget | None = None
    policy: Policy | None = None  # stricter than the project's only (spec/policy.py)
    execution: Execution | None = None  # its steps' default (spec/execution.py)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return str(value) if is_number else value

    def step(self, step_id: str) -> StepBase:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
