"""A step's templated fields rendered against the run's committed outputs, at the moment the step
starts. Pure: the result depends only on the state."""

from __future__ import annotations

from typing import Any

from podium.core.state import RunState
from podium.spec.model import StepBase
from podium.spec.template import TemplateError, render_value


class RenderError(ValueError):
    """A template could not be rendered, or the rendered step is not valid."""


def render_step(state: RunState, spec: StepBase) -> StepBase:
    """The step with every `${{ … }}` in its templated fields replaced. RenderError says which."""
    if not spec.templated:
        return spec
    changes: dict[str, Any] = {}
    context: dict[str, Any] | None = None
    for name in spec.templated:
        value = getattr(spec, name)
        if not has_template(value):
            continue
        context = context or state.template_context(spec.id)
        try:
            changes[name] = render_value(value, context)
        except (TemplateError, ValueError) as exc:
            raise RenderError(f"{name}: {exc}") from exc
    if not changes:
        return spec
    try:
        return type(spec).model_validate({**spec.model_dump(exclude_unset=True), **changes})
    except ValueError as exc:
        raise RenderError(f"rendered step is invalid: {exc}") from exc


def has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False
