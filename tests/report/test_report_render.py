"""Renderers: self-contained, escaped HTML; Markdown; JSON; long curves thinned in tables."""

from __future__ import annotations

import html.parser
import json
import re
import sys

import pytest
from markdown_it import MarkdownIt
from markupsafe import escape
from report_helpers import PLAN, epoch_record, stored_run

import dpplan
from dpplan.errors import PlanError
from dpplan.report import (
    build_report,
    build_run_report,
    render,
    to_html,
    to_json,
    to_markdown,
    to_pdf,
)

HOSTILE_TITLE = '<script>alert("title")</script> & <img src=x onerror=alert(1)>'
HOSTILE_NOTES = "first line\n</p><script>alert('notes')</script>\n<a href=\"https://e.x\">x</a>"
URL_ATTRIBUTES = {
    "src",
    "href",
    "xlink:href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "manifest",
    "ping",
    "codebase",
    "cite",
    "longdesc",
}


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.url_attributes: list[tuple[str, str, str | None]] = []
        self.event_handlers: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.title: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_title = tag == "title" and len(self.tags) < 12
        for name, value in attrs:
            if name in URL_ATTRIBUTES:
                self.url_attributes.append((tag, name, value))
            if name.startswith("on"):
                self.event_handlers.append((tag, name))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title.append(data)


@pytest.fixture(scope="module")
def hostile_report():
    return build_report(PLAN.replace(epochs=2), title=HOSTILE_TITLE, notes=HOSTILE_NOTES)


def _parse(page: str) -> _Collector:
    parser = _Collector()
    parser.feed(page)
    parser.close()
    return parser


def test_html_loads_nothing(plan_report):
    page = to_html(plan_report)
    parsed = _parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.url_attributes == []
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "iframe" not in parsed.tags and "img" not in parsed.tags
    assert not re.search(r"url\s*\(|@import|https?://", page)
    # A Content-Security-Policy forbids any request even if something slipped in.
    assert "default-src 'none'" in page
    assert parsed.tags.count("svg") == 2  # ε curve and the membership-inference bound


def test_html_escapes_user_strings(hostile_report):
    page = to_html(hostile_report)
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "a" not in parsed.tags
    assert parsed.url_attributes == [] and parsed.event_handlers == []
    text = "".join(parsed.text)
    # The title and notes come back as text, exactly as given.
    assert "".join(parsed.title) == HOSTILE_TITLE
    assert HOSTILE_TITLE in text
    assert HOSTILE_NOTES in text
    assert str(escape('<script>alert("title")</script>')) in page


def test_html_is_a_printable_document(plan_report):
    page = to_html(plan_report)
    assert "@media print" in page and "@page" in page
    for heading in (
        "1. Guarantee",
        "2. Mechanism",
        "3. Sampling",
        "4. Accounting",
        "5. Training run",
        "6. Interpretation",
        "7. Reproducibility",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert f"{plan_report.epsilon:.4f}" in page
    # The regenerating command is a code block of the page, HTML-escaped.
    blocks = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", page, flags=re.DOTALL)
    assert plan_report.reproducibility.commands["html"] + "\n" in map(html.unescape, blocks)


def test_markdown_has_every_section_and_the_numbers(plan_report):
    text = to_markdown(plan_report)
    assert text.startswith("# MNIST plan\n")
    for heading in (
        "## 1. Guarantee",
        "## 2. Mechanism",
        "## 3. Sampling",
        "## 4. Accounting",
        "## 5. Training run",
        "## 6. Interpretation",
        "## 7. Reproducibility",
    ):
        assert heading in text
    expected = dpplan.compare(PLAN)
    for curve in expected.curves:
        for value in curve.epsilons:
            assert f"{value:.4f}" in text
    assert f"ε = {expected.headline_epsilon:.4f}" in text
    assert f"{plan_report.accounting.no_amplification_epsilon:.4f}" in text
    assert plan_report.reproducibility.commands["md"] in text
    assert "Planned for the MNIST study." in text


def test_markdown_escapes_user_strings(hostile_report):
    text = to_markdown(hostile_report)
    assert "<script>" not in text.split("```console")[0]
    assert text.splitlines()[0] == (
        '# &lt;script&gt;alert\\("title"\\)&lt;/script&gt; &amp; '
        "&lt;img src=x onerror=alert\\(1\\)&gt;"
    )


# Markdown markup that a user string must not produce: images and links (which make a
# viewer fetch or link a URL, data: URLs included), autolinks, headings, emphasis, code,
# lists, tables and raw HTML.
MARKUP_TITLE = "Plan\n# Injected heading\r\n\n## Another ![img](https://e.x/t.png)"
MARKUP_NOTES = (
    "![pixel](https://e.x/pixel.png)\n[click](data:text/html,<b>hi</b>)\n"
    "<https://e.x/auto> https://e.x/bare *em* _em_ `code` ~~del~~ $x$ @user :smile:\n"
    "# heading\n- item\n+ item\n1. item\n2) item\n===\n    indented code\n"
    "| a | b |\n[ref]: https://e.x/ref\n> quote"
)
_UNESCAPED = re.compile(r"(?<!\\)[\[\]()!`*_~$@:|<>]")


@pytest.fixture(scope="module")
def markup_report():
    return build_report(PLAN.replace(epochs=1), title=MARKUP_TITLE, notes=MARKUP_NOTES)


def _notes_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("## Notes from the author") + 2
    end = lines.index("## 1. Guarantee")
    return [line for line in lines[start:end] if line]


def test_markdown_title_is_one_line_of_text(markup_report):
    text = to_markdown(markup_report).split("```console")[0]  # commands are in a code fence
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0] == (
        "# Plan \\# Injected heading \\#\\# Another \\!\\[img\\]\\(https\\://e.x/t.png\\)"
    )
    assert headings[1:] == [
        "## Warnings",
        "## Notes from the author",
        "## 1. Guarantee",
        "## 2. Mechanism",
        "## 3. Sampling",
        "## 4. Accounting",
        "## 5. Training run",
        "## 6. Interpretation",
        "## 7. Reproducibility",
    ]


def test_markdown_notes_are_text_not_markup(markup_report):
    lines = _notes_lines(to_markdown(markup_report))
    assert len(lines) == len(MARKUP_NOTES.splitlines())
    for line in lines:
        assert line.startswith("> ")
        body = line[2:]
        assert not _UNESCAPED.search(body), line  # every markup character is escaped
        assert not re.match(r"(\s|[-+=#>]|\d+[.)])", body), line  # no block starts
    assert "https" in lines[0] and "data" in lines[1]  # the text itself is kept


def test_markdown_cells_escape_user_strings():
    from dpplan.report.render import _cell

    assert _cell("a | b\n![x](y)") == "a \\| b \\!\\[x\\]\\(y\\)"


@pytest.mark.parametrize(("field", "limit"), [("notes", 20_000), ("title", 300)])
def test_too_long_text_is_not_echoed_whole(field, limit):
    with pytest.raises(
        PlanError, match=rf"{field}='x+… \(\d[\d,]* characters\) is invalid"
    ) as info:
        build_report(PLAN.replace(epochs=1), **{field: "x" * (limit + 1)})
    assert len(str(info.value)) < 200


def test_json_is_standard_and_complete(plan_report):
    text = to_json(plan_report)
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))
    assert data["schema"] == "dpplan-report" and data["schema_version"] == 2
    assert set(data["reproducibility"]["commands"]) == {"md", "html", "json", "pdf"}


def test_render_dispatch_and_unknown_format(plan_report):
    assert render(plan_report, "json") == to_json(plan_report)
    assert render(plan_report, "md") == to_markdown(plan_report)
    with pytest.raises(PlanError, match=r"format='docx' is invalid"):
        render(plan_report, "docx")


def test_long_curves_are_thinned_in_tables_not_in_json():
    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=500, noise_multiplier=2.0, epochs=100, delta=1e-4
    )
    report = build_report(plan)
    assert len(report.accounting.curves[0].epsilons) == 100
    text = to_markdown(report)
    assert "Every 3rd of 100 epochs is shown, and the last" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| [\d,]+ \| \d", line)]
    assert 30 <= len(rows) <= 41 and rows[-1].startswith("| 100 |")
    assert "of 100 epochs is shown" in to_html(report)


_GFM = MarkdownIt("commonmark").enable("table")


def assert_tables_parse(text: str) -> int:
    """Every block of lines starting with '|' is one GFM table whose rows all parse."""
    blocks, current, fenced = [], [], False
    for line in text.splitlines() + [""]:
        fenced ^= line.startswith("```")  # commands and the plan are in code fences
        if line.startswith("|") and not fenced:
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    for block in blocks:
        tokens = _GFM.parse("\n".join(block) + "\n")
        assert tokens and tokens[0].type == "table_open", block[:2]
        rows = sum(token.type == "tr_open" for token in tokens)
        assert rows == len(block) - 1, block[:2]  # every line but the delimiter is a row
        cells = [len(re.split(r"(?<!\\)\|", line)) - 2 for line in block]
        assert set(cells) == {cells[0]}, block[:2]  # header, delimiter and rows agree
    return len(blocks)


def test_every_markdown_table_of_a_plan_report_parses(plan_report, markup_report):
    assert assert_tables_parse(to_markdown(plan_report)) >= 8
    assert assert_tables_parse(to_markdown(markup_report)) >= 8
    assert assert_tables_parse(to_markdown(build_report(PLAN, tuning_runs=3))) >= 9


def test_every_markdown_table_of_a_run_report_parses(store):
    from dpplan.report import build_run_report

    plan = dpplan.TrainingPlan(
        dataset_size=1000, batch_size=50, noise_multiplier=1.2, epochs=2, delta=1e-4
    )
    first = stored_run(store, plan, group_id="g", every_method=True)
    stored_run(store, plan, group_id="g", epochs=1, status="stopped", stop_reason="a | b")
    text = to_markdown(build_run_report(store, first, title="run | title"))
    assert assert_tables_parse(text) >= 10
    header = next(line for line in text.splitlines() if line.startswith("| Epoch | Steps | ε |"))
    assert header.count("|") == 12  # 11 columns


def test_same_information_in_every_format(plan_report):
    text, page = to_markdown(plan_report), to_html(plan_report)
    numbers = [
        f"{plan_report.epsilon:.4f}",
        f"{plan_report.membership.profile[1]:.4g}",
        f"{plan_report.membership.single[1]:.4g}",
        f"{plan_report.accounting.no_amplification_epsilon:.4f}",
    ]
    for curve in plan_report.accounting.curves:
        numbers += [f"{value:.4f}" for value in curve.epsilons]
    for number in numbers:
        assert number in text and number in page, number


def test_pdf_without_pango_names_the_system_libraries(plan_report, tmp_path, monkeypatch):
    # WeasyPrint installed from its wheel loads Pango with dlopen on import: OSError if absent.
    (tmp_path / "weasyprint.py").write_text(
        "raise OSError(\"cannot load library 'libpango-1.0-0'\")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "weasyprint", raising=False)
    with pytest.raises(PlanError, match=r"format='pdf'.*libpango-1\.0-0.*install Pango"):
        to_pdf(plan_report)


def test_markdown_prints_dpplans_own_words_as_they_are(plan_report):
    # Versions, timestamps, settings, tiers: dpplan's words, not escaped (0.1.0, not 0\.1.0).
    text = to_markdown(plan_report)
    rep = plan_report.reproducibility
    assert f"made by dpplan {rep.dpplan_version} at {rep.created_at} (plan hash" in text
    assert f"| Python | {rep.python_version} |" in text
    for curve in plan_report.accounting.curves:
        assert f"| {curve.library} {curve.library_version} |" in text
    assert "| 1 < ε ≤ 10 |" in text and "| ε > 10 |" in text
    assert "optimal_order = " in text and "orders in [" in text
    assert "unknown (no trainer ran)" in text
    # The title and notes of this report hold no markup, so nothing in it is escaped.
    outside_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    assert "\\" not in outside_code and "&lt;" not in outside_code and "&gt;" not in outside_code


def test_markdown_of_a_run_escapes_only_user_strings(store):
    run_id = store.create_run(
        plan=PLAN,
        schedule={"kind": "constant", "lr": 0.1, "momentum": 0.0},
        options={"model": "seed", "data_dir": "/data/![x](https://e.x/a.png)", "split_seed": 0},
        device="cpu",
        seed=0,
        private=True,
        versions={"dpplan": dpplan.__version__, "torch": "2.13.0+cpu"},
    )
    for epoch in (1, 2):
        store.record_epoch(run_id, epoch_record(PLAN, epoch))
    store.finish_run(run_id, status="failed", error="disk <full> at /tmp/[a](b)")
    text = to_markdown(build_run_report(store, run_id))
    assert "/data/\\!\\[x\\]\\(https\\://e.x/a.png\\)" in text  # a user's path: escaped
    assert "disk &lt;full&gt; at /tmp/\\[a\\]\\(b\\)" in text  # an error's text: escaped
    assert "split_seed=0" in text and "model=seed" in text  # dpplan's option names: as they are
    assert f"dpplan {dpplan.__version__}, torch 2.13.0+cpu" in text
    assert "DP-SGD privacy report of run" in text.splitlines()[0]
    assert "\\" not in text.splitlines()[0]  # the default title is dpplan's: nothing escaped
