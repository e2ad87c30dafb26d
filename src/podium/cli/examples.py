"""The examples each command's `--help` ends with, by command name. `podium.cli.app` refuses to
register a command without one, and tests/cli/test_help.py parses every line against the command's
own arguments and options, so an example cannot name a flag that does not exist."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (
        "podium run examples/quickstart.yaml --input api=http://127.0.0.1:8000",
        "podium run flow.yaml --run-id nightly-1 --model openai:gpt-4o-mini --json",
    ),
    "validate": (
        "podium validate examples/quickstart.yaml",
        "podium validate flow.yaml --agents . --config podium.toml",
    ),
    "runs": (
        "podium runs",
        "podium runs --status failed --limit 10 --json",
    ),
    "show": (
        "podium show @latest",
        "podium show nightly-1 triage --json",
        "podium show nightly-1 --timeline",
    ),
    "events": (
        "podium events nightly-1",
        "podium events nightly-1 --follow --after 40 --json",
    ),
    "logs": (
        "podium logs nightly-1",
        "podium logs nightly-1 disk_usage --follow",
    ),
    "resume": ("podium resume nightly-1",),
    "cancel": ('podium cancel nightly-1 --reason "wrong inputs"',),
    "retry": (
        "podium retry nightly-1 fetch_issues",
        "podium retry nightly-1 --all-interrupted",
    ),
    "skip": (
        "podium skip nightly-1 escalate",
        "podium skip nightly-1 --all-failed",
    ),
    "fork": (
        "podium fork nightly-1 --from triage",
        "podium fork nightly-1 --from triage --input team=core",
    ),
    "plan": (
        'podium plan "Write a briefing on durable engines" --aggregator writer',
        'podium plan "Brief me" --confirm --mode sequential --model scripted:script.yaml',
    ),
    "ask": (
        'podium ask "Why does the build fail on Python 3.13?"',
        'podium ask --thread th_01jd3k4x5mq8w2 "And on 3.12?" --on-busy queue',
        'podium ask --new-thread support-42 --agent coder "Fix the flaky test" --json',
    ),
    "threads": ("podium threads", "podium threads support-42 --json"),
    "approvals": ("podium approvals", "podium approvals nightly-1 --json"),
    "answer": (
        "podium answer nightly-1 pick_team platform",
        "podium answer nightly-1 estimate '{\"days\": 3}'",
    ),
    "approve": (
        "podium approve nightly-1",
        "podium approve nightly-1 deploy --set env.TARGET=staging",
        "podium approve nightly-1 plan --edit plan.json",
    ),
    "reject": ('podium reject nightly-1 deploy --reason "not before the release"',),
    "feedback": (
        'podium feedback nightly-1 triage --up --comment "exactly the right labels"',
        "podium feedback @latest fetch_issues --down --json",
    ),
    "prune": (
        "podium prune --older-than 30d --dry-run",
        "podium prune --older-than 12h --status failed,cancelled --json",
    ),
    "script": ("podium script nightly-1 -o replay.yaml",),
    "serve": (
        "podium serve",
        "podium serve --host 0.0.0.0 --port 8080 --tokens /etc/podium/tokens.json",
        "podium serve --control --cors-origin https://ops.example.com",
    ),
    "worker": (
        "podium worker",
        "podium worker --store postgresql://podium@db.internal/podium --concurrency 16",
        "podium worker --drain 120",
    ),
    "token": (
        "podium token create --scope write --name ci",
        "podium token create --scope read --scope approve --name reviewer",
        "podium token list --json",
        "podium token revoke tok_1a2b3c4d",
    ),
    "graph": (
        "podium graph examples/quickstart.yaml",
        "podium graph nightly-1 --format svg -o nightly.svg",
        "podium graph flow.yaml --format dot | dot -Tpng -o flow.png",
    ),
}


def epilog(name: str) -> str:
    """The examples of command `name` as the text `--help` ends with."""
    lines = EXAMPLES[name]
    heading = "Example:" if len(lines) == 1 else "Examples:"
    return "\n".join([heading, *(f"$ {line}" for line in lines)])


__all__ = ["EXAMPLES", "epilog"]
