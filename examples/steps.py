"""Python steps of the quickstart: plain functions, called with the step's `args`."""

from __future__ import annotations

from typing import Any


def triage(issues: list[dict[str, Any]], team: str) -> dict[str, Any]:
    """Count the team's open issues by label and pick out the urgent ones."""
    mine = [i for i in issues if i.get("team") == team and i.get("state") == "open"]
    by_label: dict[str, int] = {}
    for issue in mine:
        for label in issue.get("labels", []):
            by_label[label] = by_label.get(label, 0) + 1
    urgent = [i["title"] for i in mine if "urgent" in i.get("labels", [])]
    return {
        "open": len(mine),
        "by_label": dict(sorted(by_label.items())),
        "urgent": len(urgent),
        "urgent_titles": urgent,
    }
