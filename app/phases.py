"""The sidebar's phase editor: phases after the first, and their URL form (issue 20).

The plan form's fields are phase 1; here are its optional "stop after steps" and the later
phases (batch size, σ, epochs, steps), with buttons to add and remove them. The URL carries
them as ``steps=`` (phase 1) and ``phases=B,σ,E,steps;…`` so a phased plan's link round-trips.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

import dpplan
from dpplan.errors import PlanError

#: Fields of each phase after the first (the form's batch size, σ and epochs are phase 1);
#: ``steps`` 0 means "all of the phase's epochs".
PHASE_FIELDS = ("batch_size", "noise_multiplier", "epochs", "steps")
#: Most phases the form edits.
MAX_FORM_PHASES = 8
_LABELS = {
    "batch_size": "Expected batch size B",
    "noise_multiplier": "Noise multiplier σ",
    "epochs": "Epochs",
    "steps": "steps (0 = all)",
}
#: Longest piece of a query value quoted back in a warning.
_SHOWN_CHARS = 40


def _shown(text: str) -> str:
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}…"


def _whole_or_float(field: str, text: str) -> int | float:
    """A phase value from the URL: σ a finite number, the others whole numbers."""
    try:
        number = float(text)
    except ValueError:
        raise PlanError(field, text, "a number") from None
    if not math.isfinite(number):
        raise PlanError(field, text, "a finite number")
    if field == "noise_multiplier":
        return number
    if not number.is_integer() or abs(number) > 2**53:
        raise PlanError(field, text, "a whole number")
    return int(number)


def phases_from_url() -> tuple[int, list[dict[str, Any]], list[str]]:
    """Phase 1's ``steps`` and the later phases from the URL (``phases=B,σ,E,steps;…``)."""
    params, notes = st.query_params, []
    first_steps, phases = 0, []
    if "steps" in params:
        try:
            first_steps = int(_whole_or_float("steps", params["steps"]))
        except PlanError:
            notes.append(f"Ignored steps={_shown(params['steps'])} from the link.")
    if "phases" in params:
        try:
            for item in params["phases"].split(";")[: MAX_FORM_PHASES - 1]:
                parts = item.split(",")
                if len(parts) != len(PHASE_FIELDS):
                    raise PlanError("phases", item, "batch_size,noise_multiplier,epochs,steps")
                phase = {}
                for field, text in zip(PHASE_FIELDS, parts, strict=True):
                    kind = "noise_multiplier" if field == "noise_multiplier" else "epochs"
                    phase[field] = _whole_or_float(kind, text)
                phases.append(phase)
        except PlanError as error:
            phases = []
            notes.append(
                f"Ignored phases={_shown(params['phases'])} from the link: each "
                f"phase must be {error.expected}, separated by ';'. Using one phase."
            )
    return max(0, first_steps), phases, notes


def _add_phase() -> None:
    count = st.session_state["plan_phase_count"]
    previous = f"phase{count}_" if count else "plan_"
    for field in PHASE_FIELDS:
        value = st.session_state.get(previous + field, 0)
        st.session_state[f"phase{count + 1}_{field}"] = 0 if field == "steps" else value
    st.session_state["plan_phase_count"] = count + 1


def _remove_phase() -> None:
    count = st.session_state["plan_phase_count"]
    for field in PHASE_FIELDS:
        st.session_state.pop(f"phase{count}_{field}", None)
    st.session_state["plan_phase_count"] = max(0, count - 1)


def phase_editor(sidebar) -> tuple[list[dict[str, Any]], Any]:
    """The sidebar's phase editor: phase 1's steps, later phases, add and remove."""
    box = sidebar.expander("Phases", expanded=bool(st.session_state["plan_phase_count"]))
    box.caption(
        "The fields above are phase 1. Add phases that change B or σ; 'steps' 0 runs all of a "
        "phase's epochs, more stops it mid-way. Solve, Train and Report use phase 1."
    )
    box.number_input("Phase 1: stop after steps (0 = all)", key="plan_steps", step=1, min_value=0)
    phases = []
    for index in range(1, st.session_state["plan_phase_count"] + 1):
        box.markdown(f"**Phase {index + 1}**")
        for field in PHASE_FIELDS:
            label = _LABELS[field]
            kwargs: dict[str, Any] = {"key": f"phase{index}_{field}"}
            if field == "noise_multiplier":
                kwargs.update(format="%.3f", step=0.05)
            else:
                kwargs.update(step=1, format="%d")
            box.number_input(f"Phase {index + 1}: {label}", **kwargs)
        phases.append({f: st.session_state[f"phase{index}_{f}"] for f in PHASE_FIELDS})
    left, right = box.columns(2)
    left.button(
        "Add phase",
        key="plan_add_phase",
        on_click=_add_phase,
        disabled=len(phases) + 1 >= MAX_FORM_PHASES,
    )
    right.button(
        "Remove last", key="plan_remove_phase", on_click=_remove_phase, disabled=not phases
    )
    return phases, box.empty()


def phased_from_form(
    plan: dpplan.TrainingPlan, phases: list[dict[str, Any]]
) -> dpplan.PhasedPlan | None:
    """The phased plan of the form, or None when it is the one-phase plan itself."""
    first_steps = st.session_state["plan_steps"]
    if not phases and not first_steps:
        return None
    members = [plan]
    for index, phase in enumerate(phases, start=2):
        try:
            members.append(
                plan.replace(
                    batch_size=phase["batch_size"],
                    noise_multiplier=phase["noise_multiplier"],
                    epochs=phase["epochs"],
                )
            )
        except PlanError as error:
            raise PlanError(f"phase {index}: {error.field}", error.value, error.expected) from None
    steps = [first_steps or None] + [phase["steps"] or None for phase in phases]
    return dpplan.PhasedPlan(phases=members, phase_steps=steps)


def phases_query(phased: dpplan.PhasedPlan | None) -> dict[str, str]:
    """The query parameters of the phases (``steps`` of phase 1, ``phases`` of the rest)."""
    if phased is None:
        return {}
    data = phased.to_dict()["phases"]
    found = {}
    if data[0].get("steps"):
        found["steps"] = str(data[0]["steps"])
    if len(data) > 1:
        found["phases"] = ";".join(
            ",".join(str(p.get(f, 0)) for f in PHASE_FIELDS) for p in data[1:]
        )
    return found
