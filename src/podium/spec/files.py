"""The file confinement policy (SPEC F16): whether file steps and file tools may touch Podium's
own state (the workspace's `.podium/`, the store, the project configuration, the agents catalog).
Pure.

Off by default. Only the project configuration (`[policy.files] podium_state = true`) may turn
it on; a workflow asking for it gets a problem, like a workflow loosening an approval rule.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from podium.errors import Problem

PROJECT_TABLE = "[policy.files]"


class FilePolicy(BaseModel):
    """`podium_state`: file steps and tools may read and write Podium's own state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    podium_state: bool = False

    def record(self) -> dict[str, object]:
        return {"podium_state": self.podium_state}


def tightened_files(base: FilePolicy, workflow: FilePolicy) -> tuple[FilePolicy, list[Problem]]:
    """The project's file policy, and a problem when the workflow tries to loosen it."""
    if workflow.podium_state and not base.podium_state:
        problem = Problem(
            "policy.files.podium_state",
            "a workflow cannot let file steps touch Podium's own state (.podium/, the store, "
            "the project configuration, the agents catalog); allow it in the project "
            f"configuration ({PROJECT_TABLE} podium_state = true)",
        )
        return base, [problem]
    return base, []
