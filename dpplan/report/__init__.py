"""ε-budget reports of a plan, a run, a phased plan, a ledger or a sweep: Markdown,
self-contained HTML, PDF and JSON.

A report states exactly what was accounted and how, and what it bought: the (ε, δ) guarantee
and what it assumes and covers; the DP-SGD mechanism; ε with Poisson sampling and without
amplification; ε after every epoch from RDP, PRV and PLD; for a run, accuracy and loss against
ε with Opacus' ε beside dpplan's; what the privacy profile implies for a membership-inference
attacker; the privacy cost of tuning; and how to regenerate it. A sweep's report shows its
frontier, the best accuracy at ε ≤ x with the plan behind it and the cost of the tuning.
:func:`build_report` and its siblings gather numbers and facts into a :class:`Report` (every ε
from :mod:`dpplan.accounting`); one template per format lays them out. No torch, no streamlit.

Example:
    >>> import dpplan
    >>> from dpplan.report import build_report, to_markdown
    >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1,
    ...                            epochs=2, delta=1e-5)
    >>> report = build_report(plan, title="MNIST, σ = 1.1")
    >>> report.epsilon == dpplan.compare(plan).headline_epsilon
    True
    >>> to_markdown(report).startswith("# MNIST, σ = 1.1")
    True
"""

from dpplan.report.build import (
    FORMATS,
    build_report,
    build_run_report,
    build_sweep_report,
    load_run_report,
    plan_hash,
    save_run_report,
)
from dpplan.report.composition import build_ledger_report, build_phased_report
from dpplan.report.model import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    Report,
    report_from_dict,
    report_schema,
)
from dpplan.report.render import to_html, to_json, to_markdown, to_pdf
from dpplan.report.sections import FALSE_POSITIVE_RATES

__all__ = [
    "FALSE_POSITIVE_RATES",
    "FORMATS",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "Report",
    "build_ledger_report",
    "build_phased_report",
    "build_report",
    "build_run_report",
    "build_sweep_report",
    "load_run_report",
    "plan_hash",
    "render",
    "report_from_dict",
    "report_schema",
    "save_run_report",
    "to_html",
    "to_json",
    "to_markdown",
    "to_pdf",
]


def render(report: Report, fmt: str) -> str | bytes:
    """Return ``report`` as ``fmt``: ``"md"``, ``"html"``, ``"json"`` (text) or ``"pdf"`` (bytes).

    Raises:
        PlanError: (field ``format``) for another format, or PDF without WeasyPrint.

    Example:
        >>> render(None, "docx")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        dpplan.errors.PlanError: format='docx' is invalid: must be one of 'md', 'html', 'json', 'pdf'...
    """
    from dpplan import _validate

    fmt = _validate.choice(options=FORMATS, hint="Pick a report format.", format=fmt)
    return {"md": to_markdown, "html": to_html, "json": to_json, "pdf": to_pdf}[fmt](report)
