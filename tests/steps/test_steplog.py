"""The shell step's log file (podium.steps.steplog): lines per stream in the order written, a
partial last line kept, over-long lines cut into pieces, the cap with its note, and a folder that
cannot be written giving the log up without failing anything."""

from __future__ import annotations

from pathlib import Path

from podium.steps import steplog


def texts(path: Path) -> list[tuple[str, str]]:
    records, _ = steplog.read_records(path)
    return [(r["stream"], r["text"]) for r in records]


def test_lines_from_both_streams_keep_their_order_and_a_partial_line_waits(tmp_path: Path) -> None:
    path = steplog.log_path(tmp_path, "r1", "s", 1)
    log = steplog.StepLog(path, 1024)
    log.feed("stdout", b"a\nb")
    log.feed("stderr", b"e1\r\n")
    assert texts(path) == [("stdout", "a"), ("stderr", "e1")]  # "b" is not a line yet
    log.feed("stdout", b"c\n")
    log.close()
    assert texts(path) == [("stdout", "a"), ("stderr", "e1"), ("stdout", "bc")]


def test_a_line_longer_than_the_maximum_is_written_in_pieces(tmp_path: Path) -> None:
    path = steplog.log_path(tmp_path, "r1", "s", 1)
    log = steplog.StepLog(path, 10 * steplog.MAX_LINE)
    log.feed("stdout", b"x" * (steplog.MAX_LINE * 2 + 5) + b"\n")
    log.close()
    assert [len(text) for _, text in texts(path)] == [steplog.MAX_LINE, steplog.MAX_LINE, 5]


def test_past_the_cap_lines_are_counted_and_a_last_line_says_so(tmp_path: Path) -> None:
    path = steplog.log_path(tmp_path, "r1", "s", 1)
    log = steplog.StepLog(path, 10)
    log.feed("stdout", b"12345\n67890\nabc\n")
    log.close()
    assert texts(path) == [
        ("stdout", "12345"),
        ("stderr", "[log capped at 10 bytes: 10 more bytes not kept]"),
    ]


def test_a_silent_step_leaves_no_file_and_reading_from_an_offset_continues(tmp_path: Path) -> None:
    quiet = steplog.log_path(tmp_path, "r1", "quiet", 1)
    steplog.StepLog(quiet, 100).close()
    assert not quiet.exists()
    path = steplog.log_path(tmp_path, "r1", "s", 2)
    log = steplog.StepLog(path, 100)
    log.feed("stdout", b"one\n")
    first, offset = steplog.read_records(path)
    log.feed("stdout", b"two\n")
    log.close()
    rest, _ = steplog.read_records(path, offset)
    assert [r["text"] for r in first + rest] == ["one", "two"]
    assert steplog.attempt_logs(tmp_path, "r1", "s") == [(2, path)]


def test_a_log_that_cannot_be_written_is_given_up(tmp_path: Path) -> None:
    (tmp_path / ".podium").write_text("a file where the folder would go")
    log = steplog.StepLog(steplog.log_path(tmp_path, "r1", "s", 1), 100)
    log.feed("stdout", b"lost\n")  # no error: the step runs on without its log
    log.close()
    assert steplog.forget_run_logs(tmp_path, "r1") == []
