"""Step feedback: the check that a person's rating fits the run (a finished step, up or down, a
short comment) and the `step.feedback` event it becomes, whether it is appended at once or read
by the run's driver as a `feedback` signal."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any, cast, get_args

from podium.core import events as ev
from podium.core.happenings import ControlSignal
from podium.core.state import RunState
from podium.errors import InvalidTransitionError, PodiumError, StepNotFoundError, UsageError

RATINGS: tuple[str, ...] = get_args(ev.FeedbackRating)
MAX_COMMENT_CHARS = 2_000


def feedback_event(
    state: RunState,
    step_id: str,
    rating: str,
    *,
    comment: str | None,
    who: str,
    now: datetime,
) -> ev.StepFeedback:
    """The `step.feedback` event, or the error saying what to fix: an unknown step (with the
    closest step id), a step that has not finished, a rating other than up or down, a comment
    over `MAX_COMMENT_CHARS`."""
    if rating not in RATINGS:
        raise UsageError(f"feedback rating must be up or down, not {rating!r}")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise UsageError(
            f"the feedback comment has {len(comment):,} characters; keep it to "
            f"{MAX_COMMENT_CHARS:,}"
        )
    step = state.steps.get(step_id)
    if step is None:
        raise _unknown_step(state, step_id)
    if not step.terminal:
        raise InvalidTransitionError(
            f"step {step_id} is {step.status}; feedback is for a step that has finished "
            "(succeeded, failed, skipped or cancelled); give it when the step is done",
            run_id=state.run_id,
            step_id=step_id,
        )
    return ev.StepFeedback(
        at=now,
        step_id=step_id,
        rating=cast(ev.FeedbackRating, rating),
        comment=comment or None,
        who=who,
    )


def feedback_payload(event: ev.StepFeedback) -> dict[str, Any]:
    """What a `feedback` signal carries: everything of the event but its instant."""
    return event.model_dump(mode="json", exclude={"kind", "at"})


def feedback_signal_event(state: RunState, signal: ControlSignal, now: datetime) -> ev.Event:
    """The event a `feedback` signal becomes when it is read, checked again against the run as
    it is then: `step.feedback`, or `signal.refused` saying why it no longer fits."""
    payload = signal.payload
    comment = payload.get("comment")
    step_id = str(payload.get("step_id", ""))
    try:
        return feedback_event(
            state,
            step_id,
            str(payload.get("rating", "")),
            comment=comment if isinstance(comment, str) else None,
            who=str(payload.get("who", "")),
            now=now,
        )
    except PodiumError as exc:
        return ev.SignalRefused(
            at=now, signal_id=signal.id, signal=signal.kind, step_id=step_id, reason=str(exc)
        )


def _unknown_step(state: RunState, step_id: str) -> StepNotFoundError:
    close = difflib.get_close_matches(step_id, list(state.steps), n=1)
    error = StepNotFoundError(state.run_id, step_id, list(state.steps))
    if close:
        error.args = (f'{error.args[0]}; did you mean "{close[0]}"?',)
    return error
