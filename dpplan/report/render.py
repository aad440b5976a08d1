"""Render a :class:`~dpplan.report.model.Report` as JSON or Markdown (pure functions).

User-supplied strings (title, notes, run errors, option values) are text, not markup: in
the Markdown every character that could start Markdown markup (links, images, emphasis,
code, headings, lists, tables, autolinks) is backslash-escaped, and ``<``, ``>``, ``&`` are
HTML-escaped, so a Markdown viewer neither loads, links nor runs anything from them. The
title is put on one line.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from dpplan.report import _format as f
from dpplan.report.model import Report

__all__ = ["to_json", "to_markdown"]


def to_json(report: Report) -> str:
    """Return the report as JSON text (2-space indent, UTF-8 characters kept).

    Non-finite floats are the strings ``"inf"``/``"-inf"``/``"nan"``, so the text is
    standard JSON that ``report.schema.json`` validates.

    Example:
        >>> import dpplan
        >>> from dpplan.report import build_report, report_from_dict
        >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
        ...                            noise_multiplier=1.1, epochs=1, delta=1e-5)
        >>> report = build_report(plan)
        >>> report_from_dict(json.loads(to_json(report))) == report
        True
    """
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


#: Characters that start inline Markdown (CommonMark and GitHub's extensions: links,
#: images, emphasis, code, strikethrough, tables, math, autolinks, mentions, emoji,
#: headings). ``<``, ``>`` and ``&`` are HTML-escaped instead.
_INLINE_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~$:@^])")


def _text(value: Any) -> str:
    r"""Escape a user-supplied string for Markdown running text (it stays on its lines).

    Every line is text, not markup: inline markup characters get a backslash, a line
    cannot open a list, setext heading or indented code block, and ``<>&`` become entities.

    Example:
        >>> print(_text("![x](https://e.x/a.png) <b>\n1. - item"))
        \!\[x\]\(https\://e.x/a.png\) &lt;b&gt;
        1\. - item
    """
    lines = []
    for line in str(value).splitlines() or [""]:
        line = _INLINE_SPECIAL.sub(r"\\\1", line)
        line = re.sub(r"^(\s*)([-+=])", r"\1\\\2", line)  # bullet list, setext underline
        line = re.sub(r"^(\s*\d+)([.)])", r"\1\\\2", line)  # ordered list
        line = html.escape(line, quote=False)
        indent = len(line) - len(line.lstrip(" \t"))  # no indented code block
        line = "&nbsp;" * len(line[:indent].expandtabs(4)) + line[indent:]
        lines.append(line)
    return "\n".join(lines)


def _line(value: Any) -> str:
    """Escape a user-supplied string for one line of Markdown (whitespace runs collapsed)."""
    return _text(" ".join(str(value).split()))


def _cell(value: Any) -> str:
    """Escape a value for a Markdown table cell (one line; pipes escaped by :func:`_text`)."""
    return _line(value)


def _table(headers: list[str], rows: list[list[Any]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] * len(headers)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _fence(text: str, info: str = "") -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def to_markdown(report: Report) -> str:
    """Return the report as a Markdown document (GitHub-flavoured tables).

    The Markdown has tables only; the HTML report adds the charts.

    Example:
        >>> import dpplan
        >>> from dpplan.report import build_report
        >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
        ...                            noise_multiplier=1.1, epochs=1, delta=1e-5)
        >>> to_markdown(build_report(plan, title="A <b>plan</b>")).splitlines()[0]
        '# A &lt;b&gt;plan&lt;/b&gt;'
    """
    g, m, s, a, i, r = (report.guarantee, report.mechanism, report.sampling, report.accounting,
                        report.interpretation, report.reproducibility)
    subject = f"run {report.run.id}" if report.run is not None else "a training plan"
    out = [f"# {_line(report.title)}", ""]  # one line: a newline cannot add headings
    out += [
        f"> **(ε = {f.eps(g.epsilon)}, δ = {g.delta:g})-differential privacy** · example-level · "
        f"add-or-remove adjacency · Poisson sampling · central model · headline method "
        f"{f.method(g.method)} · tier {i.tier}",
        ">",
        f"> {g.statement}",
        "",
        f"Report on {subject}, made by dpplan {r.dpplan_version} at {r.created_at} "
        f"(plan hash `{r.plan_hash[:16]}`).",
        "",
    ]
    if report.warnings:
        out += ["## Warnings", ""] + [f"- {_text(w)}" for w in report.warnings] + [""]
    if report.notes is not None:
        out += ["## Notes from the author", ""]
        out += ["> " + _text(line) if line.strip() else ">" for line in report.notes.splitlines()]
        out += [""]

    # 1. Guarantee
    t = g.tuning
    out += ["## 1. Guarantee", ""]
    out += _table(["", ""], [
        ["Definition", g.definition],
        ["ε (headline)",
         f"{f.eps(g.epsilon)}: the smallest upper bound, from {f.method(g.method)}"],
        ["δ", f"{g.delta:g}"],
        ["Trust model", f"{g.trust_model}: {g.trust_model_description}"],
        ["Unit of privacy", f"{g.unit}: {g.unit_description}"],
        ["Adjacency", g.adjacency],
        ["Sampling assumed", g.sampling],
        ["Hyper-parameter tuning covered by the headline", f.tuning_coverage(t)],
        ["Runs on this data", f"{t.runs_tried} ({t.source})"],
    ])
    out += ["", "**Protected:**", ""] + [f"- {p}" for p in g.protects]
    out += ["", "**Not protected:**", ""] + [f"- {p}" for p in g.does_not_protect]
    out += ["", f"**Hyper-parameter tuning.** {_text(t.statement)}", ""]
    if t.accounted:
        rows = [
            ["One run (the headline)", f.eps(t.epsilon_one_run),
             "this run only" if report.run is not None else "one run of this plan", "yes"],
            [f"All {t.runs_tried} runs composed", f.eps(t.epsilon_all_runs),
             f"every run, hence any selection ({f.method(t.epsilon_all_runs_method)})", "yes"],
        ]
        if t.repeat_and_select_epsilon is not None:
            rows.append([f"Repeat-and-select, Poisson({t.runs_tried}) runs",
                         f.eps(t.repeat_and_select_epsilon), "the best run only (RDP)",
                         "yes" if t.repeat_and_select_applies else "**no**: fixed number of runs"])
        out += _table(["Scope", "ε", "covers", "applies here"], rows, ["l", "r", "l", "l"])
        out += [""]
        if t.all_runs_description:
            out += [f"*All runs:* {t.all_runs_description}", ""]
        if t.repeat_and_select_description:
            out += [f"*Repeat-and-select:* {t.repeat_and_select_description}", ""]

    # 2. Mechanism
    out += ["## 2. Mechanism", "", m.algorithm, ""]
    rows = [
        ["Dataset size N", f"{m.dataset_size:,}"],
        ["Expected batch size B", f"{m.batch_size:,}"],
        ["Sample rate q = B/N", f"{m.sample_rate:.6g}"],
        ["Steps per epoch ⌈N/B⌉", f"{m.steps_per_epoch:,}"],
        ["Epochs accounted", f"{m.epochs:,}" + (f" (of {m.epochs_planned:,} planned)"
                                               if m.epochs != m.epochs_planned else "")],
        ["Noisy steps accounted", f"{m.total_steps:,}" + (
            f" (of {m.total_steps_planned:,} planned)" if m.epochs != m.epochs_planned else "")],
        ["Noise multiplier σ", f"{m.noise_multiplier:g}"],
        ["Clipping norm C", f"{m.max_grad_norm:g}"],
        ["Noise standard deviation σ·C", f"{m.noise_standard_deviation:g}"],
        ["Optimizer", _cell(m.optimizer) if m.optimizer else
         "not part of a plan (it does not change ε)"],
        ["Learning-rate schedule", _cell(m.schedule_description) if m.schedule_description
         else "not part of a plan (it does not change ε)"],
        ["Model", _cell(m.model) if m.model else "not part of a plan (it does not change ε)"],
    ]
    out += _table(["Setting", "Value"], rows) + [""]

    # 3. Sampling
    out += ["## 3. Sampling", ""]
    out += _table(
        ["Sampling", "ε at δ = " + f"{g.delta:g}", "computed by"],
        [
            ["Poisson at rate q (assumed by the accounting)", f.eps(s.epsilon_poisson),
             f"{f.method(s.epsilon_poisson_method)} (headline)"],
            ["Each example once per epoch, arbitrary order (no amplification)",
             f.eps(s.epsilon_no_amplification), s.no_amplification_method],
        ],
        ["l", "r", "l"],
    )
    out += ["", f"- **Assumed:** {s.assumed_description}",
            f"- **Used by the trainer:** {_text(s.used_description)}",
            f"- **Used sampling matches the assumption:** {f.yes_no(s.matches)}"
            + (" (no trainer ran)" if s.matches is None else ""),
            f"- **Without amplification:** {s.no_amplification_description}", ""]

    # 4. Accounting
    out += ["## 4. Accounting", "", a.bound_note, ""]
    headers, align = ["Epoch", "Steps"], ["r", "r"]
    columns = []
    for curve in a.curves:
        headers.append(f"{f.method(curve.method)} ε")
        columns.append(curve.epsilons)
        align.append("r")
        if curve.lower is not None:
            headers.append(f"{f.method(curve.method)} lower")
            columns.append(curve.lower)
            align.append("r")
    rows_shown, stride = f.table_rows(len(a.epochs))
    rows = [[a.epochs[k], f"{a.steps[k]:,}"] + [f.eps(c[k]) for c in columns]
            for k in rows_shown]
    out += ["ε after every epoch (upper bounds; PRV's lower bound beside it):", ""]
    out += _table(headers, rows, align)
    if stride > 1:
        out += ["", f.thinned_note(len(a.epochs), stride)]
    out += [
        "",
        f"- **Headline:** ε = {f.eps(a.headline_epsilon)} from {f.method(a.headline_method)}, "
        "the smallest final upper bound.",
        f"- **PRV lower bound on the true ε:** {f.eps(a.prv_lower_bound)}",
        f"- **δ = {a.delta:g}; 1/N = {a.one_over_dataset_size:.3g}; δ < 1/N:** "
        f"{f.yes_no(a.delta_below_one_over_dataset_size)}"
        + ("" if a.delta_below_one_over_dataset_size else
           " (**warning**: a mechanism that publishes one random example outright meets this δ)"),
    ]
    for method_name, message in a.failures.items():
        out.append(f"- **{f.method(method_name)} failed:** {_text(message)}")
    out += ["", "| Method | Library | What is reported | Numerical settings |",
            "| --- | --- | --- | --- |"]
    for curve in a.curves:
        notes = "".join(f" Note: {_cell(w)}" for w in curve.warnings)
        out.append(f"| {f.method(curve.method)} ({curve.name}) | {curve.library} "
                   f"{curve.library_version} | {curve.description}{notes} | "
                   f"{_cell(f.settings_text(curve.settings))} |")
    out += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in a.libraries.items()) + ".", ""]

    # 5. Run
    if report.run is not None:
        run = report.run
        out += [f"## 5. Training run {run.id}", ""]
        out += _table(["", ""], [
            ["Status", _cell(run.status) + (f" ({_cell(run.stop_reason)})" if run.stop_reason
                                            else "")],
            ["Error", _cell(run.error) if run.error else "none"],
            ["Device", _cell(run.device)],
            ["Seed", str(run.seed)],
            ["Started / last update (UTC)", f"{run.created_at} / {run.updated_at}"],
            ["Training time", f"{run.training_seconds:.1f} s over {len(run.epochs)} epoch(s)"],
            ["Comparison group", _cell(run.group_id) if run.group_id else "none"],
            ["ε recorded per epoch by", f"dpplan {f.method(run.epsilon_method)}"],
            ["Largest dpplan RDP vs Opacus RDP difference",
             f"{run.opacus_max_relative_difference:.2e} (relative)"
             if run.opacus_max_relative_difference is not None else "–"],
            ["Options", _cell(", ".join(f"{k}={v}" for k, v in run.options.items()))],
            ["Versions at training time",
             _cell(", ".join(f"{k} {v}" for k, v in run.versions.items()))],
        ])
        rows_shown, stride = f.table_rows(len(run.epochs))
        out += ["", "Per epoch: accuracy and loss against ε, with Opacus' own ε beside dpplan's:",
                ""]
        out += _table(
            ["Epoch", "Steps", f"ε ({f.method(run.epsilon_method)})", "ε dpplan RDP",
             "ε Opacus RDP", "Test acc.", "Val. acc.", "Val. loss", "LR",
             "Seconds"],
            [[e.epoch, f"{e.steps:,}", f.eps(e.epsilon), f.eps(e.epsilon_rdp),
              f.eps(e.epsilon_opacus), f.pct(e.test_accuracy), f.pct(e.validation_accuracy),
              f.num(e.validation_loss, ".4f"), f.num(e.lr, ".3g"),
              f.num(e.seconds, ".1f")]
             for e in (run.epochs[k] for k in rows_shown)],
            ["r"] * 11,
        )
        if stride > 1:
            out += ["", f.thinned_note(len(run.epochs), stride)]
        if run.warnings:
            out += ["", "Run warnings:", ""] + [f"- {_text(w)}" for w in run.warnings]
        out += [""]
    else:
        out += ["## 5. Training run", "", f.NO_RUN, ""]

    # 6. Interpretation
    out += ["## 6. Interpretation", ""]
    out += [f"**Membership inference** is {i.attack}. Whatever the attack, its true-positive "
            f"rate (TPR) at a false-positive rate (FPR) obeys `{i.formula}` ({i.source}). "
            f"With ε = {f.eps(i.epsilon)} and δ = {i.delta:g}:", ""]
    out += _table(["FPR", "TPR at most", "random guessing"],
                  [[f"{b.false_positive_rate:g}", f"{b.true_positive_rate_bound:.4g}",
                    f"{b.false_positive_rate:g}"] for b in i.membership_inference],
                  ["r", "r", "r"])
    out += ["", f"**ε tier: {i.tier}.**", ""]
    out += _table(["Tier", "", "What it means", "What it does not mean"],
                  [[t_.name, "**this report**" if t_.applies else "", t_.means, t_.does_not_mean]
                   for t_ in i.tiers])
    out += [""]

    # 7. Reproducibility
    out += ["## 7. Reproducibility", ""]
    out += _table(["", ""], [
        ["dpplan version", r.dpplan_version],
        ["Python", r.python_version],
        ["Git commit", f"`{r.git_commit}`" + (" (uncommitted changes)" if r.git_dirty else "")
         if r.git_commit else "not a git checkout"],
        ["Plan hash (SHA-256)", f"`{r.plan_hash}`"],
        ["Created (UTC)", r.created_at],
    ])
    out += ["", "Regenerate this report (the JSON is identical except `created_at`):", ""]
    out += _fence(r.commands["md"], "console")
    out += ["", "Plan:", ""]
    out += _fence(json.dumps(report.plan, indent=2, allow_nan=False), "json")
    return "\n".join(out) + "\n"

