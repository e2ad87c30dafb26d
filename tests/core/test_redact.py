"""The redactor (core/redact.py): every key format, named and unnamed values, short values left
alone, JSON-like values and events, a live stream whose secret is split across pieces, linear
time on adversarial text; and what refuses a secret before it could be stored (a workflow that
holds one, a plain input holding one, an unknown `[secrets]` key)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from podium.config import load_config
from podium.core import events as ev
from podium.core.redact import PATTERNS_ONLY, Redactor
from podium.errors import InputError, SpecError
from podium.runtime.submission import hide_secrets
from podium.spec.load import load_workflow
from podium.spec.secrets import is_placeholder

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THs"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc==\n-----END RSA PRIVATE KEY-----"

FORMATS = [
    ("key sk-proj-abcdefghijklmnopqrstuvwx1234 end", "key [redacted] end"),
    ("sk-ant-api03-abcdefghijklmnopqrstuv", "[redacted]"),
    ("sk-abcdefghijklmnopqrstuvwxyz", "[redacted]"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[redacted]"),
    (
        "gho_abcdefghijklmnopqrstuvwxyz0123456789 ghs_abcdefghijklmnopqrstu1",
        "[redacted] [redacted]",
    ),
    ("github_pat_11ABCDEFG0123456789_abcdefghijkl", "[redacted]"),
    ("glpat-abcdefghij1234567890", "[redacted]"),
    ("xoxb-1234567890-abcdef", "[redacted]"),
    ("id AKIAABCDEFGHIJKLMNOP.", "id [redacted]."),
    ("AIza" + "B" * 35, "[redacted]"),
    (JWT, "[redacted]"),
    (f"{PEM}\nafter", "[redacted]\nafter"),
    ("Authorization: Bearer abcdef.ghijkl", "Authorization: Bearer [redacted]"),
    ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "Basic [redacted]"}'),
    ("postgres://alice:hunter22@db:5432/x", "postgres://alice:[redacted]@db:5432/x"),
    ("https://x/?api_key=XYZ123&x=1", "https://x/?api_key=[redacted]&x=1"),
    (
        "apikey=a access_token=b token=c",
        "apikey=[redacted] access_token=[redacted] token=[redacted]",
    ),
    (
        "PASSWORD=p secret=s client_secret=cs",
        "PASSWORD=[redacted] secret=[redacted] client_secret=[redacted]",
    ),
]
LEFT_ALONE = [
    "task-force-abcdefghijklmnopqrstuvwxyz is a word",
    "mytoken=x notapassword=y",
    "https://example.com/path?q=1",
    "sk-short",
    "a = b; x == y",
]


@pytest.mark.parametrize(("text", "expected"), FORMATS)
def test_each_key_format_is_redacted(text: str, expected: str) -> None:
    assert PATTERNS_ONLY.text(text) == expected


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert PATTERNS_ONLY.text(text) is text


def test_named_and_unnamed_values_and_short_ones_left_alone() -> None:
    redactor = Redactor({"tok": "supersecretvalue", "pin": "12345"}, ["unnamed-one", "abc"])
    said = "supersecretvalue, unnamed-one, pin 12345, abc"
    assert redactor.text(said) == "[redacted:tok], [redacted], pin 12345, abc"
    assert redactor.literals == 2


def test_values_and_events_are_redacted_and_clean_ones_kept() -> None:
    redactor = Redactor({"tok": "supersecretvalue"})
    value = {"a": ["x", {"b": "supersecretvalue"}], "supersecretvalue": 1, "n": 3}
    assert redactor.value(value) == {
        "a": ["x", {"b": "[redacted:tok]"}],
        "[redacted:tok]": 1,
        "n": 3,
    }
    clean = {"a": ["x"], "n": 3}
    assert redactor.value(clean) is clean
    event = ev.StepFailed(at=T0, step_id="s", attempt=1, error="boom supersecretvalue")
    assert redactor.model(event).error == "boom [redacted:tok]"
    started = ev.StepStarted(at=T0, step_id="s", attempt=1)
    assert redactor.model(started) is started


def test_a_secret_split_across_deltas_is_never_shown() -> None:
    secret = "ghp_" + "Q" * 36
    named = "supersecretvalue"
    redactor = Redactor({"tok": named, "phrase": "open sesame now"})
    text = f"first line\ntoken {secret} and {named} then Authorization: Bearer opaque123 ok\n" * 3
    text += PEM + "\nend of it, open sesame now and then Authorization:\n Basic opaque456 fine"
    for size in (1, 2, 3, 5, 7, 16, 33, 64, 100):
        stream = redactor.stream()
        shown = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
        shown += stream.flush()
        assert shown == redactor.text(text), size
        for hidden in (secret, named, "opaque123", "opaque456", "MIIEow", "sesame"):
            assert hidden not in shown, (size, hidden)


def test_live_text_ending_in_whitespace_is_shown_at_once() -> None:
    stream = PATTERNS_ONLY.stream()
    assert stream.feed("hello ") == "hello "
    assert stream.feed("wor") == ""  # a token still arriving
    assert stream.feed("ld, Authorization: Bearer ") == "world, "
    assert stream.feed("sk-abc123 then more ") == "Authorization: Bearer [redacted] then more "
    assert stream.flush() == ""


@pytest.mark.parametrize(
    "adversarial",
    [
        "eyJ" * 350_000,
        "eyJa.eyJa." * 100_000,
        "sk-" * 350_000,
        "-----BEGIN PRIVATE KEY-----" * 40_000,
        ("-----BEGIN " + "A " * 20) * 20_000,
        "a://" * 250_000,
        "https://u:" * 100_000,
        "://a:" * 200_000,
        ":" * 1_000_000 + "@",
        "=a" * 500_000,
        "token=" * 170_000,
        "Authorization: Bearer " * 50_000,
        "AKIA" * 250_000,
        "ghgh" * 250_000,
        "a" * 1_000_000,
    ],
)
def test_a_megabyte_of_adversarial_text_takes_well_under_a_second(adversarial: str) -> None:
    """Linear, not quadratic: ten times the text takes about ten times as long (a catastrophic
    pattern would take a hundred), and a megabyte well under a second."""
    redactor = Redactor({"tok": "supersecretvalue"}, ["another-value"])
    tenth = adversarial[: len(adversarial) // 10]
    small = _seconds(redactor, tenth)
    whole = _seconds(redactor, adversarial)
    assert whole < 1.0
    assert whole < 30 * max(small, 0.01), (small, whole)


def _seconds(redactor: Redactor, text: str) -> float:
    started = time.perf_counter()
    redactor.text(text)
    return time.perf_counter() - started


def test_a_workflow_holding_a_literal_secret_is_refused() -> None:
    doc = {
        "name": "w",
        "steps": [
            {
                "id": "call",
                "kind": "http",
                "url": "https://api.example.com/v1",
                "headers": {"Authorization": "Bearer sk-abcdefghijklmnopqrstuvwxyz12"},
            }
        ],
    }
    with pytest.raises(SpecError) as caught:
        load_workflow(doc)
    assert "steps[0].headers.Authorization" in str(caught.value)
    assert "type: secret" in str(caught.value)
    doc["steps"][0]["headers"] = {"Authorization": "Bearer ${{ inputs.key }}"}
    doc["inputs"] = {"key": {"type": "secret"}}
    load_workflow(doc)  # a template is not a literal secret


def test_a_secret_input_has_no_default_and_env_only_for_secrets() -> None:
    step = {"id": "s", "kind": "shell", "run": "true"}
    with pytest.raises(SpecError, match="a secret input has no default"):
        load_workflow(
            {"name": "w", "inputs": {"k": {"type": "secret", "default": "x"}}, "steps": [step]}
        )
    with pytest.raises(SpecError, match="`env` applies to an input of `type: secret` only"):
        load_workflow({"name": "w", "inputs": {"k": {"env": "K"}}, "steps": [step]})


def test_secret_inputs_become_placeholders_and_plain_inputs_with_keys_are_refused() -> None:
    step = {"id": "s", "kind": "shell", "run": "true"}
    wf = load_workflow(
        {"name": "w", "inputs": {"k": {"type": "secret"}, "url": {}}, "steps": [step]}
    )
    memory: dict[str, str] = {}
    values = hide_secrets(wf, {"k": "the-value-123", "url": "https://x"}, memory)
    assert is_placeholder(values["k"])
    assert memory == {values["k"]: "the-value-123"}
    with pytest.raises(InputError, match="input url holds a password in a URL"):
        hide_secrets(wf, {"k": "v", "url": "https://me:pw1234@x"}, {})


def test_an_unknown_secrets_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text('[secrets]\nenvs = ["GITHUB_TOKEN"]\n')
    with pytest.raises(SpecError, match="unknown key 'envs'; did you mean 'env'"):
        load_config(tmp_path)
    (tmp_path / "podium.toml").write_text('[secrets]\nenv = ["GITHUB_TOKEN", "NOT-A-NAME"]\n')
    with pytest.raises(SpecError, match="not an environment variable name"):
        load_config(tmp_path)
    (tmp_path / "podium.toml").write_text('[secrets]\nenv = ["GITHUB_TOKEN"]\n')
    assert load_config(tmp_path).secret_env() == ["GITHUB_TOKEN"]
