"""The shell sandbox's policy (SPEC F16): whether shell steps run inside bubblewrap and which
extra host paths they may read. Pure.

On by default. The project configuration (`[policy.sandbox]`) may turn it off or add read-only
paths; a workflow's `policy: sandbox:` may only keep it on (both loosen it, so they are the
project's call). A step opts out alone with `sandbox: false`, recorded in its meta.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podium.errors import Problem

PROJECT_TABLE = "[policy.sandbox]"


class SandboxPolicy(BaseModel):
    """`enabled` (shell steps sandboxed) and `read` (absolute host paths mounted read-only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    read: list[str] = Field(default_factory=list)

    @field_validator("read")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or "\0" in path:
                raise ValueError(f"sandbox read path {path!r} must be an absolute path")
        return value

    def record(self) -> dict[str, object]:
        return {"enabled": self.enabled, "read": list(self.read)}


def tightened(base: SandboxPolicy, workflow: SandboxPolicy) -> tuple[SandboxPolicy, list[Problem]]:
    """The project's sandbox policy with the workflow's applied, and a problem for each attempt
    of the workflow to loosen it (turn it off, add read paths): only the project may."""
    problems = []
    if not workflow.enabled and base.enabled:
        problems.append(
            Problem(
                "policy.sandbox.enabled",
                "a workflow cannot turn the shell sandbox off; set `sandbox: false` on the "
                f"step, or turn it off in the project configuration ({PROJECT_TABLE} "
                "enabled = false)",
            )
        )
    extra = [path for path in workflow.read if path not in base.read]
    if extra:
        problems.append(
            Problem(
                "policy.sandbox.read",
                f"a workflow cannot add sandbox read paths ({', '.join(extra)}); add them in "
                f"the project configuration ({PROJECT_TABLE} read = [...])",
            )
        )
    asked = "enabled" in workflow.model_fields_set
    enabled = base.enabled or (asked and workflow.enabled)  # a workflow may turn it back on
    return SandboxPolicy(enabled=enabled, read=list(base.read)), problems
