r"""Render a :class:`~dpplan.report.model.Report`: JSON, and Markdown, HTML and PDF from templates.

The shared words are in ``templates/_words.j2``. ``report.md.j2`` lays out a plan's or a
run's report, ``sweep.md.j2`` a sweep's, ``ledger.md.j2`` a phased plan's or a ledger's (their
shared parts: ``_parts.md.j2``). The HTML page (``page.html.j2``) holds the same Markdown
rendered by markdown-it, with the SVG charts as HTML blocks. Numbers come only from the model,
through the filters here.

User-supplied strings (title, notes, run errors, option values) are text, not markup: the page
template escapes every value (Jinja2 autoescape); in the Markdown every value printed is escaped
(:func:`_text`) unless a filter marked it safe, so markdown-it turns it back into the same text.
dpplan's own words (versions, timestamps, settings, field names, statuses) go through the
``own`` filter and print as they are (``0.1.0``, not ``0\.1.0``). The HTML loads nothing: inline
CSS and SVG, no script, no URL, and a Content-Security-Policy that forbids any request.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import math
import re
from typing import Any

import jinja2
import markupsafe
from markupsafe import Markup

from dpplan.format import epsilon_text
from dpplan.report.model import Report, Sweep
from dpplan.report.svg import Series, line_chart

__all__ = ["to_html", "to_json", "to_markdown", "to_pdf"]

#: Tables show at most about this many epochs; longer curves are thinned (the JSON and the
#: charts keep every epoch).
MAX_TABLE_ROWS = 40
#: Starts each item of a list a words macro returns (see ``_words.j2``).
SEP = "\x1e"
_METHODS = {"rdp": "RDP", "prv": "PRV", "pld": "PLD"}
_SCHEDULE_NAMES = {"one_cycle": "one-cycle", "plateau": "plateau", "constant": "constant"}
#: Colour, dash and marker of each method's line (ε chart) and each schedule's (frontier).
_STYLE = {
    "rdp": ("#1f5fa8", None, "circle"),
    "prv": ("#c0392b", "7 4", "square"),
    "pld": ("#2e7d32", "2 3", "triangle"),
    "one_cycle": ("#1f5fa8", None, "circle"),
    "plateau": ("#c77c02", "7 4", "square"),
    "constant": ("#2e7d32", "2 3", "triangle"),
}


def to_json(report: Report) -> str:
    """Return the report as JSON text (2-space indent, UTF-8 characters kept).

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


def to_markdown(report: Report) -> str:
    """Return the report as a Markdown document (GitHub-flavoured tables; no charts).

    Example:
        >>> import dpplan
        >>> from dpplan.report import build_report
        >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
        ...                            noise_multiplier=1.1, epochs=1, delta=1e-5)
        >>> to_markdown(build_report(plan, title="A <b>plan</b>")).splitlines()[0]
        '# A &lt;b&gt;plan&lt;/b&gt;'
    """
    return _markdown(report, "md")


def _markdown(report: Report, fmt: str, command_format: str = "md") -> str:
    """The Markdown report; for ``fmt="html"`` the body of the HTML page: no title, summary,
    warnings or notes (the page shows them), the SVG figures as HTML blocks."""
    charts = _charts(report) if fmt == "html" else {}

    def figure(name: str, caption: str) -> Markup:
        chart = f"<figure>{charts.get(name)}<figcaption>{caption}</figcaption></figure>"
        return Markup(f"\n\n{chart}\n\n" if name in charts else "")

    layout = {"sweep": "sweep", "phased": "ledger", "ledger": "ledger"}.get(report.kind, "report")
    text = (
        _env(fmt)
        .get_template(f"{layout}.md.j2")
        .render(
            r=report,
            command_format=command_format,
            plan_json=_plan_json(report),
            html=fmt == "html",
            figure=figure,
        )
    )
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def to_html(report: Report, *, command_format: str = "html") -> str:
    """Return the report as one self-contained HTML document (inline CSS and SVG charts).

    Example:
        >>> import dpplan
        >>> from dpplan.report import build_report
        >>> plan = dpplan.TrainingPlan(dataset_size=60000, batch_size=256,
        ...                            noise_multiplier=1.1, epochs=1, delta=1e-5)
        >>> page = to_html(build_report(plan, title="<script>x</script>"))
        >>> "<script>" in page, "&lt;script&gt;x&lt;/script&gt;" in page
        (False, True)
    """
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table")
    return (
        _env("page")
        .get_template("page.html.j2")
        .render(r=report, body=Markup(body.render(_markdown(report, "html", command_format))))
    )


def to_pdf(report: Report) -> bytes:
    """Return the HTML report printed to PDF (A4) by WeasyPrint, which fetches nothing.

    Raises:
        MissingDependencyError: if WeasyPrint (the ``pdf`` extra) is not installed.
        PlanError: (field ``format``) if WeasyPrint cannot load the Pango libraries it
            prints with.
    """
    from dpplan.errors import MissingDependencyError, PlanError

    try:
        import weasyprint
    except ImportError:
        raise MissingDependencyError(
            "weasyprint",
            extra="pdf",
            purpose="to print a PDF report",
            hint="PDF needs WeasyPrint: pip install 'dpplan[pdf]'.",
        ) from None
    except OSError as error:  # WeasyPrint is installed, but a system library is missing
        raise PlanError(
            "format",
            "pdf",
            "a format whose renderer can run",
            f"WeasyPrint could not load a system library ({error}); install Pango "
            "(Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0).",
        ) from None

    def refuse(url: str, *args: Any, **kwargs: Any) -> dict:
        raise ValueError(f"the report loads nothing (asked for {url[:60]!r})")

    logger = logging.getLogger("weasyprint")
    level = logger.level
    logger.setLevel(logging.ERROR)  # font-subsetting and unknown-CSS notes are not news
    try:
        return weasyprint.HTML(
            string=to_html(report, command_format="pdf"), url_fetcher=refuse
        ).write_pdf()
    finally:
        logger.setLevel(level)


def _plan_json(report: Report) -> str:
    """The plan's fields as JSON; for a sweep, its grid (the ``dpplan sweep`` inputs, one line
    a key); for a phased plan its ``--plan`` file; for a ledger its records."""
    if report.ledger is not None:  # a record's max_batch_size only where it has one
        records = [e.model_dump().items() for e in report.ledger.records]
        records = [{k: v for k, v in e if v is not None or k == "batch_size"} for e in records]
        return json.dumps(records, indent=2)
    if (p := report.phased) is not None:
        phases = []
        for phase in p.phases:
            item = {k: getattr(phase, k) for k in ("batch_size", "noise_multiplier", "epochs")}
            if phase.steps != -(-p.dataset_size // phase.batch_size) * phase.epochs:
                item["steps"] = phase.steps  # the phase stops mid-way
            phases.append(item)
        return json.dumps(
            {"dataset_size": p.dataset_size, "delta": p.delta, "phases": phases}, indent=2
        )
    if (s := report.sweep) is None:
        derived = {"sample_rate", "steps_per_epoch", "total_steps"}
        return json.dumps(report.plan.model_dump(exclude=derived), indent=2)
    grid = {k: getattr(s, k) for k in ("target_epsilons", "delta", "batch_sizes", "epochs")}
    grid |= {"schedules": s.schedules} | {f"{k}_lrs": v for k, v in s.learning_rates.items()}
    grid |= {k: getattr(s, k) for k in ("seeds", "method", "max_grad_norm", "random_repeats")}
    if s.plateau_every is not None:
        grid["plateau_every"] = s.plateau_every
    grid["options"] = s.options
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in grid.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


# ---- filters (numbers are formatted here, and only here) -------------------------------


def _eps(value: float | None) -> Markup:
    if value is None or not math.isfinite(value):
        return Markup("–" if value is None else "nan" if math.isnan(value) else "∞")
    return Markup(epsilon_text(value))


def _num(value: float | None, spec: str = "g") -> Markup:
    if value is None:
        return Markup("–")
    if isinstance(value, float) and math.isinf(value):
        return Markup("∞")
    return Markup(html.escape(format(value, spec)))


def _pct(value: float | None, digits: int = 2) -> Markup:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Markup("–")
    return Markup(f"{value:.{digits}%}")


def _delta_html(value: float) -> Markup:
    """δ for the headline: 10<sup>−5</sup> rather than 1e-05."""
    if not 0 < value < 0.01:
        return Markup(f"{value:g}")
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10<sup>{int(exponent)}</sup>".replace("-", "−")
    return Markup(power if mantissa == "1" else f"{mantissa} × {power}")


def _settings(settings: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        if isinstance(value, list):
            return "[" + ", ".join(one(v) for v in value) + "]"
        return str(value)

    return "; ".join(f"{key} = {one(value)}" for key, value in settings.items())


def _words(value: Any) -> Markup:
    """A words macro's output as one paragraph (its values were escaped in the macro)."""
    return Markup(" ".join(str(value).split()))


def _items(value: Any) -> list[Markup]:
    """A words macro's list: the items that start with :data:`SEP`, one paragraph each."""
    return [_words(item) for item in str(value).split(SEP)[1:] if item.strip()]


def table_rows(count: int, limit: int = MAX_TABLE_ROWS) -> tuple[list[int], int]:
    """Return (indices to show, stride): every ``stride``-th row plus the last one.

    Example:
        >>> table_rows(5)
        ([0, 1, 2, 3, 4], 1)
    """
    if count <= limit:
        return list(range(count)), 1
    stride = math.ceil(count / limit)
    rows = list(range(stride - 1, count, stride))
    return (rows if rows[-1] == count - 1 else rows + [count - 1]), stride


def _thinned(count: int, stride: int) -> str:
    suffix = (
        "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    )
    return (
        f"Every {stride}{suffix} of {count} epochs is shown, and the last; the JSON report "
        "holds every epoch."
    )


# ---- Markdown escaping ------------------------------------------------------------------

#: Characters that start inline Markdown (CommonMark and GitHub's extensions: links,
#: images, emphasis, code, strikethrough, tables, math, autolinks, mentions, emoji,
#: headings). ``<``, ``>`` and ``&`` are HTML-escaped instead.
_INLINE_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~$:@^])")


def _text(value: Any) -> str:
    r"""Escape a string for Markdown running text (it stays on its lines).

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
        lines.append("&nbsp;" * len(line[:indent].expandtabs(4)) + line[indent:])
    return "\n".join(lines)


def _cell(value: Any) -> Markup:
    """Escape any value printed in Markdown: one line, whitespace runs collapsed."""
    if isinstance(value, Markup):
        return value
    return Markup(_text(re.sub(r"\s+", " ", str(value))))


def _quote(value: str) -> Markup:
    """The author's notes as a Markdown block quote of escaped lines."""
    return Markup(
        "\n".join("> " + _text(line) if line.strip() else ">" for line in value.splitlines())
    )


def _fence(text: str, info: str = "") -> Markup:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markup(f"{fence}{info}\n{text}\n{fence}")


@functools.cache
def _env(fmt: str) -> jinja2.Environment:
    """``md``: the Markdown report; ``html``: the same Markdown as the HTML page's body (dpplan's
    own words HTML-escaped, as it goes through markdown-it); ``page``: the HTML page itself."""
    page = fmt == "page"
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dpplan.report", "templates"),
        autoescape=page,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=None if page else _cell,
    )
    env.filters.update(
        eps=_eps,
        num=_num,
        pct=_pct,
        delta_html=_delta_html,
        settings=_settings,
        words=_words,
        items=_items,
        quote=_quote,
        fence=_fence,
        method=lambda m: Markup(_METHODS.get(m, "–")),
        # dpplan's own words: as they are in Markdown, HTML-escaped (as autoescape would) in HTML
        own={"md": _words, "html": lambda v: Markup(html.escape(_words(v), quote=False))}.get(
            fmt, markupsafe.escape
        ),
        schedule_name=lambda k: _SCHEDULE_NAMES.get(k, k),
    )
    env.globals.update(SEP=Markup(SEP), thin=table_rows, thinned=_thinned)
    return env


# ---- charts (inline SVG) ------------------------------------------------------------------


def _line(label: str, xs: Any, ys: Any, style: tuple, **more: Any) -> Series:
    color, dash, marker = style
    return Series(
        label=label, xs=tuple(xs), ys=tuple(ys), color=color, dash=dash, marker=marker, **more
    )


def _sweep_charts(s: Sweep) -> dict[str, Markup]:
    """The frontier chart: test accuracy (%) against ε on a log axis; a line with a ± std
    band per schedule, and the frontier's selected points ringed on top."""
    predicted = s.simulation is not None  # predictions: dashed lines, hollow markers
    suffix = f", {s.simulation.label}" if predicted else ""

    def accuracy(points: Any, sign: int = 0) -> list[float]:
        return [(p.test_accuracy_mean + sign * (p.test_accuracy_std or 0)) * 100 for p in points]

    series = []
    for c in s.curves:
        color, dash, marker = _STYLE.get(c.schedule_kind, ("#555", None, "circle"))
        series.append(
            _line(
                f"{_SCHEDULE_NAMES.get(c.schedule_kind, c.schedule_kind)} ± sample std{suffix}",
                (p.epsilon for p in c.points),
                accuracy(c.points),
                (color, dash or "5 3", "ring") if predicted else (color, dash, marker),
                low=tuple(accuracy(c.points, -1)),
                high=tuple(accuracy(c.points, 1)),
            )
        )
    alone = s.protocol == "random_repeats"
    series.append(
        _line(
            ("selected model at each ε" if alone else "frontier (selected at each ε)") + suffix,
            (p.epsilon for p in s.points),
            accuracy(s.points),
            ("#111", None if alone else "1 4", "ring"),
            width=1.2 if len(s.points) > 1 else 0,
        )
    )
    xs = [x for item in series for x in item.xs if x > 0 and math.isfinite(x)]
    ys = [y for i in series for y in (*i.ys, *(i.low or ()), *(i.high or ())) if math.isfinite(y)]
    if not xs:
        return {}
    pad = max(1.0, 0.08 * (max(ys) - min(ys)))
    targets = [e for e in s.target_epsilons if e > 0 and math.isfinite(e)]
    xs += targets  # every target ε is on the axis, and ticked
    svg = line_chart(
        series,
        title="Test accuracy against ε (log scale), by schedule, and the frontier",
        x_label=f"ε of one run at δ = {s.delta:g} (log scale)",
        y_label="test accuracy (%)",
        height=360,
        x_range=(min(xs) / 1.35, max(xs) * 1.35),
        y_range=(max(0.0, min(ys) - pad), min(100.0, max(ys) + pad)),
        log_x=True,
        x_tick_values=targets,
    )
    return {"frontier": Markup(svg)}


def _charts(report: Report) -> dict[str, Markup]:
    """The SVG figures of the HTML report, by name."""
    a, m, run = report.accounting, report.membership, report.run
    if report.sweep is not None or a is None:  # a ledger has no curve
        return _sweep_charts(report.sweep) if report.sweep else {}
    xs = (0.0, *map(float, a.epochs))  # ε after 0 epochs is 0
    series = []
    for c in a.curves:
        name = _METHODS[c.method]
        series.append(_line(f"{name} upper bound", xs, (0.0, *c.epsilons), _STYLE[c.method]))
        if c.lower is not None:
            low = ("#e6a29b", "1 3", None)
            series.append(_line(f"{name} lower bound", xs, (0.0, *c.lower), low, width=1.6))
    charts = {
        "epsilon": line_chart(
            series,
            title="ε after every epoch, by accounting method",
            x_label="epoch",
            y_label=f"ε at δ = {report.delta:g}",
            integer_x=True,
            height=320,
        )
    }
    if m is not None:
        roc = ("largest possible TPR (privacy profile)", m.roc_false_positive_rates)
        charts["membership"] = line_chart(
            [_line(*roc, m.roc_true_positive_rates, ("#c0392b", None, None), width=2.2)],
            title="Upper bound on a membership-inference attack's ROC curve (log-log)",
            x_label="false-positive rate (log scale)",
            y_label="true-positive rate (log scale)",
            width=420,
            height=340,
            x_range=(1e-5, 1.0),
            y_range=(1e-5, 1.0),
            reference=((1e-5, 1e-5), (1.0, 1.0)),
            reference_label="random guessing",
            log_x=True,
            log_y=True,
        )
    if run is not None:
        xs = tuple(e.epsilon for e in run.epochs)
        shape = {"x_label": "ε after each epoch (smallest upper bound)", "width": 440}

        def measured(name: str, scale: float = 100) -> list[float]:  # NaN (not drawn): unknown
            return [math.nan if (v := getattr(e, name)) is None else v * scale for e in run.epochs]

        validation = ("#c77c02", "6 3", "square")  # both charts
        charts["accuracy"] = line_chart(
            [
                _line("test accuracy", xs, measured("test_accuracy"), _STYLE["rdp"]),
                _line("validation accuracy", xs, measured("validation_accuracy"), validation),
            ],
            title="Accuracy against ε",
            y_label="accuracy (%)",
            height=300,
            **shape,
        )
        charts["loss"] = line_chart(
            [_line("validation loss", xs, measured("validation_loss", 1), validation)],
            title="Validation loss against ε",
            y_label="cross-entropy loss",
            height=300,
            **shape,
        )
    return {name: Markup(svg) for name, svg in charts.items()}
