"""Number formatting and row selection shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Tables show at most about this many epochs; longer curves are thinned (the JSON and the
#: charts keep every epoch).
MAX_TABLE_ROWS = 40

METHOD_LABELS = {"rdp": "RDP", "prv": "PRV", "pld": "PLD"}


def eps(value: float | None) -> str:
    """Format an ε: 4 decimals, ∞ for infinity, '–' for missing."""
    if value is None:
        return "–"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "∞"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def num(value: float | None, spec: str = "g") -> str:
    """Format a number with ``spec``; '–' for missing, ∞ for infinity."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return format(value, spec)


def pct(value: float | None) -> str:
    """Format a fraction as a percentage with 2 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2%}"


def method(name: str | None) -> str:
    """Return the display name of an accounting method."""
    if name is None:
        return "–"
    return METHOD_LABELS.get(name, name)


def yes_no(value: bool | None) -> str:
    """Format a tri-state flag."""
    return "unknown" if value is None else ("yes" if value else "no")


def table_rows(count: int, limit: int = MAX_TABLE_ROWS) -> tuple[list[int], int]:
    """Return (indices to show, stride): every ``stride``-th row plus the last one."""
    if count <= limit:
        return list(range(count)), 1
    stride = math.ceil(count / limit)
    rows = list(range(stride - 1, count, stride))
    if rows[-1] != count - 1:
        rows.append(count - 1)
    return rows, stride


def thinned_note(count: int, stride: int) -> str:
    """Say that a table shows every ``stride``-th of ``count`` epochs."""
    suffix = "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        stride % 10, "th")
    return (f"Every {stride}{suffix} of {count} epochs is shown, and the last; the JSON report "
            "holds every epoch.")


def settings_text(settings: dict) -> str:
    """Format an accountant's numerical settings as ``key = value`` pairs."""
    parts = []
    for key, value in settings.items():
        if isinstance(value, float):
            text = f"{value:.6g}"
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                                   for v in value) + "]"
        else:
            text = str(value)
        parts.append(f"{key} = {text}")
    return "; ".join(parts)


def finite(values: Sequence[float]) -> bool:
    """Whether every value is finite."""
    return all(math.isfinite(v) for v in values)


NO_RUN = ("None: this report is about a plan. Accuracy, loss, timings and Opacus' own ε "
          "appear in the report of a run (dpplan report --run ID).")


def tuning_coverage(tuning) -> str:
    """Say whether the headline ε covers hyper-parameter tuning."""
    if tuning.runs_tried > 1:
        return f"no: {tuning.runs_tried} runs; see the tuning table for ε of all of them"
    if tuning.source == "declared":
        return "yes: one run on this data was declared"
    return "not accounted: no other runs were declared or recorded"
