"""Render a :class:`~dpplan.report.model.Report` as one self-contained HTML file.

The file loads nothing: styles are inline, charts are inline SVG generated here, there is no
JavaScript, no ``src`` and no ``href``, and a Content-Security-Policy forbids any request.
Every string is escaped with :func:`html.escape`. ``@media print`` lays it out for A4.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from dpplan.report import _format as f
from dpplan.report.build import membership_tpr_bound
from dpplan.report.model import Report, RunSummary
from dpplan.report.svg import Series, line_chart

__all__ = ["to_html"]

_COLORS = {"rdp": "#1f5fa8", "prv": "#c0392b", "pld": "#2e7d32"}
_DASHES = {"rdp": None, "prv": "7 4", "pld": "2 3"}
_MARKERS = {"rdp": "circle", "prv": "square", "pld": "triangle"}

_CSS = """
:root { --ink:#1b1b1b; --muted:#5a5a5a; --rule:#d5d9de; --soft:#f4f6f9; --accent:#1f4e79;
        --warn:#9a5b00; --warnbg:#fff6e5; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.55 Georgia, "Times New Roman", "DejaVu Serif", serif; }
main { max-width: 920px; margin: 0 auto; padding: 2.2rem 2rem 3rem; }
h1, h2, h3, .kicker, .headline, th, .chip, figcaption, .meta, dt {
  font-family: "Helvetica Neue", Helvetica, Arial, "DejaVu Sans", sans-serif; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: .75rem;
          color: var(--accent); margin: 0 0 .3rem; font-weight: 600; }
h1 { font-size: 1.85rem; line-height: 1.2; margin: 0 0 .4rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 .7rem; padding-bottom: .25rem;
     border-bottom: 2px solid var(--accent); color: var(--accent); }
h3 { font-size: 1rem; margin: 1.3rem 0 .4rem; }
.meta { color: var(--muted); font-size: .85rem; margin: 0 0 1.2rem; }
p { margin: .45rem 0 .7rem; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .82em; }
pre { background: var(--soft); border: 1px solid var(--rule); padding: .6rem .75rem;
      white-space: pre-wrap; overflow-wrap: anywhere; margin: .4rem 0 .9rem; }
.summary { border: 1px solid var(--rule); border-left: 6px solid var(--accent);
           background: var(--soft); padding: 1rem 1.3rem .8rem; margin: 1rem 0 1.2rem; }
.headline { font-size: 1.75rem; font-weight: 700; color: var(--accent); margin: 0 0 .35rem; }
.chips { margin: .1rem 0 .6rem; }
.chip { display: inline-block; font-size: .75rem; border: 1px solid #b9c3cf;
        background: #fff; border-radius: 3px; padding: .05rem .45rem; margin: 0 .3rem .3rem 0; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: .6rem; margin: .8rem 0 .2rem; }
.kpis div { background: #fff; border: 1px solid var(--rule); padding: .45rem .6rem; }
.kpis dt { font-size: .72rem; color: var(--muted); }
.kpis dd { margin: .1rem 0 0; font-size: 1.15rem; font-weight: 600;
           font-variant-numeric: tabular-nums; }
.kpis dd small { font-size: .7rem; font-weight: 400; color: var(--muted); display: block; }
.warnings { border: 1px solid #e3c48a; border-left: 6px solid var(--warn);
            background: var(--warnbg); padding: .5rem 1.2rem .4rem; margin: 1rem 0; }
.warnings h2 { border: 0; color: var(--warn); margin: .3rem 0 .2rem; font-size: 1rem; }
.warnings ul { margin: .2rem 0 .5rem; padding-left: 1.2rem; }
.notes { border: 1px dashed var(--rule); padding: .4rem 1.2rem; margin: 1rem 0; }
.notes h2 { border: 0; margin: .4rem 0 .2rem; font-size: 1rem; }
.notes p { white-space: pre-wrap; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 .9rem; font-size: .86rem;
        font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--rule); padding: .32rem .55rem; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
thead th { border-bottom: 2px solid #9aa5b1; font-size: .78rem; background: var(--soft); }
td.n, th.n { text-align: right; white-space: nowrap; }
table.kv th { width: 30%; font-weight: 600; font-size: .8rem; color: #333; background: none; }
tr.current td { background: #eef4fb; }
.tier { white-space: nowrap; font-weight: 600; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 1.4rem; }
.two > * { min-width: 0; }
ul.tight { margin: .2rem 0 .6rem; padding-left: 1.2rem; }
ul.tight li { margin: .15rem 0; }
figure { margin: .8rem 0 1.1rem; }
figcaption { font-size: .8rem; color: var(--muted); margin-top: .2rem; }
svg.chart { display: block; max-width: 100%; height: auto; }
.small { font-size: .82rem; color: var(--muted); }
.badge { font-family: Helvetica, Arial, sans-serif; font-size: .72rem; font-weight: 700;
         padding: .05rem .4rem; border-radius: 3px; background: var(--accent); color: #fff;
         white-space: nowrap; display: inline-block; margin-top: .2rem; }
.no { color: #a12622; font-weight: 700; }
footer { margin-top: 2.5rem; border-top: 1px solid var(--rule); padding-top: .6rem;
         font-size: .78rem; color: var(--muted); }
@media (max-width: 720px) { .two, .kpis { grid-template-columns: 1fr; } main { padding: 1rem; } }
@media print {
  @page { size: A4; margin: 16mm 14mm 16mm 14mm; }
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; margin-top: 1.4rem; }
  figure, .summary, .kpis, table.kv, tr, .warnings {
    break-inside: avoid; page-break-inside: avoid; }
  .summary, .warnings, thead th, tr.current td, .badge, .kpis div {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  pre { white-space: pre-wrap; }
}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text or attribute values."""
    return html.escape(str(value), quote=True)


def _delta(value: float) -> str:
    """Format δ for the headline: 10<sup>−5</sup> rather than 1e-05."""
    if not 0 < value < 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10<sup>{int(exponent)}</sup>".replace("-", "−")
    return power if mantissa == "1" else f"{mantissa} × {power}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool],
           row_classes: Sequence[str] | None = None, caption: str | None = None,
           widths: Sequence[str] | None = None) -> str:
    head = "".join(f'<th class="n">{h}</th>' if n else f"<th>{h}</th>"
                   for h, n in zip(headers, numeric, strict=True))
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="n">{c}</td>' if n else f"<td>{c}</td>"
                        for c, n in zip(row, numeric, strict=True))
        body.append(f"<tr{css}>{cells}</tr>")
    cap = f"<caption class=\"small\">{caption}</caption>" if caption else ""
    cols = ("<colgroup>" + "".join(f'<col style="width:{w}">' for w in widths) + "</colgroup>"
            if widths else "")
    return (f"<table>{cap}{cols}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table>")


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _ul(items: Iterable[str]) -> str:
    return '<ul class="tight">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _epsilon_chart(report: Report) -> str:
    a = report.accounting
    # ε after 0 epochs is 0: every curve starts at the origin.
    xs = (0.0,) + tuple(float(e) for e in a.epochs)
    series = []
    for curve in a.curves:
        series.append(Series(label=f"{f.method(curve.method)} upper bound", xs=xs,
                             ys=(0.0,) + curve.epsilons, color=_COLORS[curve.method],
                             dash=_DASHES[curve.method], marker=_MARKERS[curve.method]))
        if curve.lower is not None:
            series.append(Series(label=f"{f.method(curve.method)} lower bound", xs=xs,
                                 ys=(0.0,) + curve.lower, color="#e6a29b", dash="1 3",
                                 marker=None, width=1.6))
    return line_chart(series, title="ε after every epoch, by accounting method",
                      x_label="epoch", y_label=f"ε at δ = {a.delta:g}", integer_x=True,
                      height=320)


def _run_charts(run: RunSummary) -> str:
    xs = tuple(e.epsilon for e in run.epochs)
    x_label = f"ε (dpplan {f.method(run.epsilon_method)}, after each epoch)"
    accuracy = line_chart(
        [Series(label="test accuracy", xs=xs, ys=tuple(e.test_accuracy * 100 for e in run.epochs),
                color="#1f5fa8", marker="circle"),
         Series(label="validation accuracy", xs=xs,
                ys=tuple(e.validation_accuracy * 100 for e in run.epochs), color="#c77c02",
                dash="6 3", marker="square")],
        title="Accuracy against ε", x_label=x_label, y_label="accuracy (%)", width=440,
        height=300, x_format=lambda v: f"{v:g}")
    loss = line_chart(
        [Series(label="validation loss", xs=xs, ys=tuple(e.validation_loss for e in run.epochs),
                color="#c77c02", dash="6 3", marker="square")],
        title="Loss against ε", x_label=x_label, y_label="cross-entropy loss", width=440,
        height=300)
    return (
        '<div class="two">'
        f"<figure>{accuracy}<figcaption>Figure 2. Test and validation accuracy after each "
        "epoch, against the ε spent so far.</figcaption></figure>"
        f"<figure>{loss}<figcaption>Figure 3. Mean training loss over each epoch's batches "
        "and validation loss, against ε.</figcaption></figure></div>"
    )


def _membership_chart(report: Report) -> str:
    i = report.interpretation
    grid = tuple(10 ** (-4 + k / 30) for k in range(121))
    bound = tuple(membership_tpr_bound(i.epsilon, i.delta, x) for x in grid)
    return line_chart(
        [Series(label="largest possible TPR", xs=grid, ys=bound, color="#c0392b", marker=None,
                width=2.2)],
        title="Upper bound on a membership-inference attack's ROC curve (log-log)",
        x_label="false-positive rate (log scale)", y_label="true-positive rate (log scale)",
        width=420, height=340, x_range=(1e-4, 1.0), y_range=(1e-4, 1.0),
        reference=((1e-4, 1e-4), (1.0, 1.0)), reference_label="random guessing",
        log_scale=True)


def _tuning_html(report: Report) -> str:
    t = report.guarantee.tuning
    out = [f"<h3>Hyper-parameter tuning</h3><p>{_e(t.statement)}</p>"]
    if t.accounted:
        rows = [
            ["One run (the headline)", f.eps(t.epsilon_one_run),
             "this run only" if report.run is not None else "one run of this plan", "yes"],
            [f"All {t.runs_tried} runs composed", f.eps(t.epsilon_all_runs),
             f"every run, hence any selection among them "
             f"({f.method(t.epsilon_all_runs_method)})", "yes"],
        ]
        if t.repeat_and_select_epsilon is not None:
            rows.append([
                f"Repeat-and-select, Poisson({t.runs_tried}) runs",
                f.eps(t.repeat_and_select_epsilon), "the best run only (RDP)",
                "yes" if t.repeat_and_select_applies else
                '<span class="no">no</span>: the number of runs was fixed'])
        out.append(_table(["Scope", "ε", "Covers", "Applies here"], rows,
                          [False, True, False, False]))
        if t.all_runs_description:
            out.append(f'<p class="small"><b>All runs.</b> {_e(t.all_runs_description)}</p>')
        if t.repeat_and_select_description:
            out.append(f'<p class="small"><b>Repeat-and-select.</b> '
                       f"{_e(t.repeat_and_select_description)}</p>")
    return "".join(out)


def to_html(report: Report) -> str:
    """Return the report as one self-contained HTML document.

    Example:
        >>> import dpplan
        >>> from dpplan.report import build_report
        >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
        ...                            noise_multiplier=1.1, epochs=1, delta=1e-5)
        >>> page = to_html(build_report(plan, title="<script>x</script>"))
        >>> "<script>" in page, "&lt;script&gt;x&lt;/script&gt;" in page
        (False, True)
    """
    g, m, s, a, i, r = (report.guarantee, report.mechanism, report.sampling, report.accounting,
                        report.interpretation, report.reproducibility)
    t = g.tuning
    subject = (f"Training run {report.run.id}" if report.run is not None
               else "Training plan (no run)")
    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">")
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f'<meta name="generator" content="dpplan {_e(r.dpplan_version)}">')
    add(f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body><main>")

    # Header and summary.
    add('<header><p class="kicker">Differential-privacy report · DP-SGD</p>')
    add(f"<h1>{_e(report.title)}</h1>")
    add(f'<p class="meta">{_e(subject)} · created {_e(r.created_at)} (UTC) · dpplan '
        f"{_e(r.dpplan_version)} · plan hash <code>{_e(r.plan_hash[:16])}</code></p></header>")
    add('<section class="summary" aria-label="Summary">')
    add(f'<div class="headline">(ε = {f.eps(g.epsilon)}, δ = {_delta(g.delta)})-DP</div>')
    chips = ["example-level", "add-or-remove adjacency",
             f"Poisson sampling, q = {m.sample_rate:.4g}",
             "central model", f"{f.method(g.method)}: smallest upper bound", f"tier {i.tier}"]
    add('<div class="chips">' + "".join(f'<span class="chip">{_e(c)}</span>' for c in chips)
        + "</div>")
    add(f"<p>{_e(g.statement)}</p>")
    fpr_1 = next((b for b in i.membership_inference if b.false_positive_rate == 0.01), None)
    kpis = [
        ("ε without amplification", f.eps(s.epsilon_no_amplification),
         "each example once per epoch"),
        ("PRV lower bound", f.eps(a.prv_lower_bound), "on the true ε"),
        (f"ε of all {t.runs_tried} runs" if t.runs_tried > 1 else "Tuning",
         f.eps(t.epsilon_all_runs) if t.runs_tried > 1 else "not covered",
         "composed" if t.runs_tried > 1 else "one run accounted"),
        ("Attack TPR at FPR 1%", f"≤ {fpr_1.true_positive_rate_bound:.3g}" if fpr_1 else "–",
         "membership inference"),
    ]
    add('<dl class="kpis">' + "".join(
        f"<div><dt>{_e(k)}</dt><dd>{_e(v)}<small>{_e(n)}</small></dd></div>"
        for k, v, n in kpis) + "</dl></section>")
    if report.warnings:
        add('<section class="warnings"><h2>Warnings</h2>' + _ul(report.warnings) + "</section>")
    if report.notes is not None:
        add(f'<section class="notes"><h2>Notes from the author</h2><p>{_e(report.notes)}</p>'
            "</section>")

    # 1. Guarantee.
    add('<section id="guarantee"><h2>1. Guarantee</h2>')
    add(_kv([
        ("Definition", _e(g.definition)),
        ("ε (headline)", f"<b>{f.eps(g.epsilon)}</b>: the smallest upper bound, from "
                         f"{f.method(g.method)}"),
        ("δ", _e(f"{g.delta:g}")),
        ("Trust model", f"<b>{_e(g.trust_model)}</b>: {_e(g.trust_model_description)}"),
        ("Unit of privacy", f"<b>{_e(g.unit)}</b>: {_e(g.unit_description)}"),
        ("Adjacency", _e(g.adjacency)),
        ("Sampling assumed", _e(g.sampling)),
        ("Tuning covered by the headline", _e(f.tuning_coverage(t))),
    ]))
    add('<div class="two"><div><h3>Protected</h3>' + _ul(g.protects) + "</div>"
        '<div><h3>Not protected</h3>' + _ul(g.does_not_protect) + "</div></div>")
    add(_tuning_html(report) + "</section>")

    # 2. Mechanism.
    add('<section id="mechanism"><h2>2. Mechanism</h2>')
    add(f"<p>{_e(m.algorithm)}</p>")
    planned = m.epochs != m.epochs_planned
    not_plan = "not part of a plan (it does not change ε)"
    add(_kv([
        ("Dataset size N", f"{m.dataset_size:,}"),
        ("Expected batch size B", f"{m.batch_size:,}"),
        ("Sample rate q = B/N", f"{m.sample_rate:.6g}"),
        ("Steps per epoch ⌈N/B⌉", f"{m.steps_per_epoch:,}"),
        ("Epochs accounted", f"{m.epochs:,}" + (f" (of {m.epochs_planned:,} planned)"
                                               if planned else "")),
        ("Noisy steps accounted", f"{m.total_steps:,}" + (
            f" (of {m.total_steps_planned:,} planned)" if planned else "")),
        ("Noise multiplier σ", f"{m.noise_multiplier:g}"),
        ("Clipping norm C", f"{m.max_grad_norm:g}"),
        ("Noise standard deviation σ·C", f"{m.noise_standard_deviation:g}"),
        ("Optimizer", _e(m.optimizer) if m.optimizer else not_plan),
        ("Learning-rate schedule", _e(m.schedule_description) if m.schedule_description
         else not_plan),
        ("Model", _e(m.model) if m.model else not_plan),
    ]))
    add("</section>")

    # 3. Sampling.
    add('<section id="sampling"><h2>3. Sampling</h2>')
    add(_table(
        ["Sampling", f"ε at δ = {g.delta:g}", "Computed by"],
        [["Poisson at rate q (assumed by the accounting)", f"<b>{f.eps(s.epsilon_poisson)}</b>",
          f"{f.method(s.epsilon_poisson_method)} (headline)"],
         ["Each example once per epoch, in an arbitrary order (no amplification)",
          f.eps(s.epsilon_no_amplification), _e(s.no_amplification_method)]],
        [False, True, False]))
    add(_kv([
        ("Assumed", _e(s.assumed_description)),
        ("Used by the trainer", _e(s.used_description)),
        ("Matches the assumption", _e(f.yes_no(s.matches))
         + (" (no trainer ran)" if s.matches is None else "")),
        ("Without amplification", _e(s.no_amplification_description)),
    ]))
    add("</section>")

    # 4. Accounting.
    add('<section id="accounting"><h2>4. Accounting</h2>')
    add(f"<p>{_e(a.bound_note)}</p>")
    add(f"<figure>{_epsilon_chart(report)}<figcaption>Figure 1. ε after every epoch. Solid, "
        "dashed and dotted lines are the RDP, PRV and PLD upper bounds; the light dotted line "
        "is PRV's lower bound on the true ε.</figcaption></figure>")
    headers, numeric, columns = ["Epoch", "Steps"], [True, True], []
    for curve in a.curves:
        headers.append(f"{f.method(curve.method)} ε")
        columns.append(curve.epsilons)
        numeric.append(True)
        if curve.lower is not None:
            headers.append(f"{f.method(curve.method)} lower")
            columns.append(curve.lower)
            numeric.append(True)
    shown, stride = f.table_rows(len(a.epochs))
    add(_table(headers, [[a.epochs[k], f"{a.steps[k]:,}"] + [f.eps(c[k]) for c in columns]
                         for k in shown], numeric,
               caption=f.thinned_note(len(a.epochs), stride) if stride > 1 else None))
    below = a.delta_below_one_over_dataset_size
    rows = [
        ("Headline", f"<b>ε = {f.eps(a.headline_epsilon)}</b> from "
                     f"{f.method(a.headline_method)}, the smallest final upper bound"),
        ("PRV lower bound", f"{f.eps(a.prv_lower_bound)} (the true ε of this mechanism is at "
                            "least this)"),
        ("δ and 1/N", f"δ = {a.delta:g}, 1/N = {a.one_over_dataset_size:.3g}: δ &lt; 1/N "
                      + ("holds" if below else '<span class="no">does not hold</span>: a '
                         "mechanism that publishes one random example outright meets this δ")),
    ]
    rows += [(f"{f.method(k)} failed", _e(v)) for k, v in a.failures.items()]
    rows.append(("Libraries", _e(", ".join(f"{k} {v}" for k, v in a.libraries.items()))))
    add(_kv(rows))
    add(_table(["Method", "What is reported", "Numerical settings"],
               [[f"<b>{f.method(c.method)}</b><br><span class=\"small\">{_e(c.name)}<br>"
                 f"{_e(c.library)} {_e(c.library_version)}</span>",
                 _e(c.description)
                 + "".join(f'<br><span class="small">Note: {_e(w)}</span>' for w in c.warnings),
                 f'<span class="small">{_e(f.settings_text(c.settings))}</span>']
                for c in a.curves],
               [False, False, False], widths=["24%", "46%", "30%"]))
    add("</section>")

    # 5. Run.
    add('<section id="run"><h2>5. Training run</h2>')
    if report.run is None:
        add(f"<p>{_e(f.NO_RUN)}</p>")
    else:
        run = report.run
        add(_kv([
            ("Run", f"{run.id}"),
            ("Status", _e(run.status) + (f" ({_e(run.stop_reason)})" if run.stop_reason else "")),
            ("Error", _e(run.error) if run.error else "none"),
            ("Device", _e(run.device)),
            ("Seed", _e(run.seed)),
            ("Started / last update (UTC)", f"{_e(run.created_at)} / {_e(run.updated_at)}"),
            ("Training time", f"{run.training_seconds:.1f} s over {len(run.epochs)} epoch(s)"),
            ("Comparison group", _e(run.group_id) if run.group_id else "none"),
            ("dpplan vs Opacus",
             f"ε recorded with dpplan {f.method(run.epsilon_method)}; largest relative "
             f"difference between dpplan's RDP ε and Opacus' own RDP accountant: "
             + (f"{run.opacus_max_relative_difference:.2e}"
                if run.opacus_max_relative_difference is not None else "–")),
            ("Options", _e(", ".join(f"{k}={v}" for k, v in run.options.items()))),
            ("Versions at training time", _e(", ".join(f"{k} {v}"
                                                       for k, v in run.versions.items()))),
        ]))
        add(_run_charts(run))
        shown, stride = f.table_rows(len(run.epochs))
        add(_table(
            ["Epoch", "Steps", f"ε ({f.method(run.epsilon_method)})", "ε dpplan RDP",
             "ε Opacus RDP", "Test acc.", "Val. acc.", "Val. loss", "LR", "Time (s)"],
            [[e.epoch, f"{e.steps:,}", f.eps(e.epsilon), f.eps(e.epsilon_rdp),
              f.eps(e.epsilon_opacus), f.pct(e.test_accuracy), f.pct(e.validation_accuracy),
              f.num(e.validation_loss, ".4f"), f.num(e.lr, ".3g"),
              f.num(e.seconds, ".1f")] for e in (run.epochs[k] for k in shown)],
            [True] * 10,
            caption=f.thinned_note(len(run.epochs), stride) if stride > 1 else None))
        if run.warnings:
            add("<h3>Run warnings</h3>" + _ul(run.warnings))
    add("</section>")

    # 6. Interpretation.
    add('<section id="interpretation"><h2>6. Interpretation</h2>')
    add(f"<p><b>Membership inference</b> is {_e(i.attack)}. Whatever the attack, its "
        f"true-positive rate (TPR) at a false-positive rate (FPR) obeys <code>{_e(i.formula)}"
        f"</code> ({_e(i.source)}). With ε = {f.eps(i.epsilon)} and δ = {i.delta:g}:</p>")
    mi_table = _table(["FPR", "TPR at most", "Random guessing"],
                      [[f"{b.false_positive_rate:g}", f"{b.true_positive_rate_bound:.4g}",
                        f"{b.false_positive_rate:g}"] for b in i.membership_inference],
                      [True, True, True])
    add(f'<div class="two"><div>{mi_table}<p class="small">An attacker who guesses at random '
        "has TPR = FPR. The bound is worst-case over attackers who know every other training "
        "example.</p></div>"
        f"<figure>{_membership_chart(report)}<figcaption>Figure {4 if report.run else 2}. No "
        "membership-inference attack's ROC curve can lie above the red line."
        "</figcaption></figure></div>")
    add(f"<h3>ε tier: {_e(i.tier)}</h3>")
    add(_table(["Tier", "What it means", "What it does not mean"],
               [[f'<span class="tier">{_e(t_.name)}</span>'
                 + ('<br><span class="badge">this report</span>' if t_.applies else ""),
                 _e(t_.means), _e(t_.does_not_mean)]
                for t_ in i.tiers],
               [False, False, False],
               row_classes=["current" if t_.applies else "" for t_ in i.tiers],
               widths=["18%", "41%", "41%"]))
    add("</section>")

    # 7. Reproducibility.
    add('<section id="reproducibility"><h2>7. Reproducibility</h2>')
    add(_kv([
        ("dpplan version", _e(r.dpplan_version)),
        ("Python", _e(r.python_version)),
        ("Git commit", (f"<code>{_e(r.git_commit)}</code>"
                        + (" (uncommitted changes)" if r.git_dirty else ""))
         if r.git_commit else "not a git checkout"),
        ("Plan hash (SHA-256)", f"<code>{_e(r.plan_hash)}</code>"),
        ("Created (UTC)", _e(r.created_at)),
    ]))
    add("<p>Regenerate this report (the JSON form is identical except "
        "<code>created_at</code>):</p>")
    add(f"<pre>{_e(r.commands['html'])}</pre>")
    add("<p>Plan:</p>")
    add(f"<pre>{_e(json.dumps(report.plan, indent=2, allow_nan=False))}</pre>")
    add("</section>")
    add(f"<footer>Made by dpplan {_e(r.dpplan_version)}. Every ε is an upper bound at the "
        "stated δ. This file is self-contained: it loads nothing from the network.</footer>")
    add("</main></body></html>")
    return "\n".join(parts) + "\n"

