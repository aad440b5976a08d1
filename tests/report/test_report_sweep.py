"""The report of a sweep: frontier, best accuracy at ε ≤ x, tuning cost, in every format.

The sweeps are stored without training: each trial's run gets one made-up epoch (accuracy
from its learning rate, ε and seed), as the Frontier page's tests do, so a sweep takes the
time of solving its plans and composing its runs (a few seconds), not of training.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from report_helpers import chromium_binary
from sweep_fakes import store_fake_sweep
from test_report_render import HOSTILE_NOTES, HOSTILE_TITLE, _parse, assert_tables_parse

import dpplan
from dpplan.cli import main
from dpplan.errors import NotFoundError, PlanError
from dpplan.report import (
    build_sweep_report,
    render,
    report_from_dict,
    report_schema,
    to_html,
    to_json,
    to_markdown,
)
from dpplan.store import RunStore
from dpplan.sweep import SweepSpec, frontier_result, protocol
from dpplan.train import RunOptions

GRID = dict(  # noqa: C408 - SweepSpec's field names
    target_epsilons=(1, 4),
    delta=1e-5,
    batch_sizes=(256,),
    epochs=(1,),
    schedules=("one_cycle", "plateau"),
    one_cycle_lrs=(0.5, 2),
    plateau_lrs=(0.1,),
    seeds=(0, 1, 2),
    options=RunOptions(subset=2000),
)


def _accuracy(trial: protocol.Trial) -> float:
    return (
        0.55
        + 0.08 * math.log(trial.target_epsilon)
        + 0.02 * trial.lr
        + 0.004 * trial.seed
        + (0.03 if trial.kind == "one_cycle" else 0.0)
    )


def fake_sweep(store: RunStore, **changes) -> int:
    """Store a finished sweep whose trials 'trained' instantly; return its id."""
    return store_fake_sweep(store, SweepSpec(**{**GRID, **changes}), _accuracy)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """(store, grid sweep id, random-protocol sweep id)."""
    store = RunStore(tmp_path_factory.mktemp("sweep-home"))
    grid = fake_sweep(store)
    random = fake_sweep(store, random_repeats=3.0)
    draws = store.get_sweep(random).draws["per_target"]
    assert all(
        len(picked) >= 2 for picked in draws.values()
    )  # rng(9): every configuration at each ε
    return store, grid, random


@pytest.fixture(scope="module")
def grid_report(sweeps):
    store, grid, _ = sweeps
    return build_sweep_report(store, grid, title=HOSTILE_TITLE, notes=HOSTILE_NOTES)


@pytest.fixture(scope="module")
def random_report(sweeps):
    store, _, random = sweeps
    return build_sweep_report(store, random)


def _point_numbers(point) -> tuple:
    return (
        point.target_epsilon,
        point.epsilon,
        point.plan.noise_multiplier,
        point.plan.batch_size,
        point.plan.epochs,
        point.schedule_kind,
        point.learning_rate,
        point.validation_accuracy,
        point.test_accuracy_mean,
        point.test_accuracy_std,
        point.seeds,
        point.run_ids,
    )


def _result_numbers(point: dict) -> tuple:
    schedule = point["schedule"]
    return (
        point["target_epsilon"],
        point["epsilon"],
        point["plan"]["noise_multiplier"],
        point["plan"]["batch_size"],
        point["plan"]["epochs"],
        schedule["kind"],
        schedule.get("max_lr", schedule.get("lr")),
        point["validation_accuracy"],
        point["test_accuracy_mean"],
        point["test_accuracy_std"],
        tuple(point["seeds"]),
        tuple(point["run_ids"]),
    )


def test_grid_numbers_equal_frontier_result_and_accounting(sweeps, grid_report):
    store, grid, _ = sweeps
    result = frontier_result(store, grid).to_dict()
    s = grid_report.sweep
    assert (grid_report.kind, s.protocol, s.id, s.status) == ("sweep", "grid", grid, "finished")
    assert [_point_numbers(p) for p in s.points] == [_result_numbers(p) for p in result["points"]]
    assert {c.schedule_kind: [_point_numbers(p) for p in c.points] for c in s.curves} == {
        kind: [_result_numbers(p) for p in curve] for kind, curve in result["curves"].items()
    }
    assert (s.runs_tried, s.trials.model_dump()) == (result["runs_tried"], result["trials"])
    assert s.withheld == ()
    tuning = result["tuning"]
    t = s.tuning
    assert (t.single_run_epsilon, t.all_runs_epsilon, t.all_runs_method, t.runs) == (
        tuning["single_run_epsilon"],
        tuning["all_runs_epsilon"],
        tuning["all_runs_method"],
        tuning["runs"],
    )
    assert t.repeat_and_select_epsilon is None
    assert [(r.target_epsilon, r.runs, r.all_runs_epsilon) for r in t.per_target] == [
        (r["target_epsilon"], r["runs"], r["all_runs_epsilon"]) for r in tuning["per_target"]
    ]
    # ... and dpplan.accounting's: each plan's ε, every run of the sweep composed.
    for solved in s.plans:
        plan = dpplan.TrainingPlan.from_dict(
            {
                k: getattr(solved.plan, k)
                for k in (
                    "dataset_size",
                    "batch_size",
                    "noise_multiplier",
                    "epochs",
                    "delta",
                    "max_grad_norm",
                )
            }
        )
        assert solved.epsilon == dpplan.accounting.epsilon(plan, method="prv")
        assert solved.epsilon <= solved.target_epsilon
    runs = [run for run in store.list_runs() if run.group_id == f"sweep-{grid}"]
    composed = dpplan.accounting.compose_runs(
        [(run.plan, len(run.records)) for run in runs], delta=GRID["delta"]
    )
    assert t.runs == len(runs) == 14  # 2 ε x (3 learning rates + 2 schedules x 2 repeats)
    assert t.all_runs_epsilon == pytest.approx(composed.epsilon, rel=1e-6)
    assert t.single_run_epsilon == max(p.epsilon for p in s.plans)


def test_best_accuracy_at_most_each_target(grid_report):
    s = grid_report.sweep
    assert [row.epsilon_at_most for row in s.best] == [1.0, 4.0]
    for row in s.best:
        fit = [p for p in s.points if p.epsilon <= row.epsilon_at_most]
        chosen = s.points[row.point]
        assert chosen.epsilon <= row.epsilon_at_most
        assert chosen.validation_accuracy == max(p.validation_accuracy for p in fit)
    # The made-up accuracies favour one-cycle at its largest learning rate.
    assert {(p.schedule_kind, p.learning_rate) for p in s.points} == {("one_cycle", 2.0)}


def test_json_validates_round_trips_and_kind_is_checked(grid_report, random_report):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for report in (grid_report, random_report):
        data = json.loads(to_json(report))
        jsonschema.validate(data, schema)
        assert report_from_dict(data) == report
        assert data["kind"] == "sweep" and data["plan"] is None and data["accounting"] is None
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())
    data = json.loads(to_json(grid_report))
    with pytest.raises(PlanError, match="a sweep report has a sweep section"):
        report_from_dict({**data, "sweep": None})
    data["sweep"]["points"][0]["epsilon"] = "big"
    with pytest.raises(PlanError, match="sweep/points/0/epsilon"):
        report_from_dict(data)


def test_every_markdown_table_parses_and_holds_the_numbers(grid_report, random_report):
    text = to_markdown(grid_report)
    assert assert_tables_parse(text) >= 7
    s, t = grid_report.sweep, grid_report.sweep.tuning
    for heading in (
        "## 1. Frontier",
        "### Best accuracy at ε ≤ x",
        "### Per schedule",
        "## 2. Privacy cost of the tuning",
        "## 3. What selection on the validation split covers",
        "## 4. The sweep",
        "## 5. Reproducibility",
    ):
        assert heading in text.splitlines()
    best = s.points[s.best[-1].point]
    row = next(line for line in text.splitlines() if line.startswith("| 4 | "))
    assert f"{best.test_accuracy_mean:.2%} ± {best.test_accuracy_std:.2%}" in row
    assert f"{best.plan.noise_multiplier:.4f}" in row and "one-cycle" in row
    assert ", ".join(map(str, best.run_ids)) in row
    assert f"All {t.runs} runs composed | {t.all_runs_epsilon:.4f}" in text
    assert f"dpplan report --sweep {s.id} --home" in text
    assert grid_report.reproducibility.commands["md"] in text
    assert assert_tables_parse(to_markdown(random_report)) >= 5


def test_markdown_prints_dpplans_own_words_as_they_are(random_report):
    text = to_markdown(random_report)
    rep, s = random_report.reproducibility, random_report.sweep
    assert f"made by dpplan {rep.dpplan_version} at {rep.created_at} (spec hash" in text
    assert "| Schedules and learning rates | one-cycle: 0.5, 2; plateau: 0.1 |" in text
    assert "| Protocol | random repeat-and-select, Poisson mean 3 |" in text
    assert f"| Started / last update (UTC) | {s.created_at} / {s.updated_at} |" in text
    assert "subset=2000" in text and "validation_size=" in text  # option names as they are


_X_TICK = re.compile(r'text-anchor="middle" font-size="11"[^>]*>([^<]*)</text>')


def test_frontier_chart_ticks_every_target_epsilon(grid_report):
    [svg] = re.findall(r"<svg.*?</svg>", to_html(grid_report), flags=re.DOTALL)
    assert _X_TICK.findall(svg) == [f"{e:g}" for e in grid_report.sweep.target_epsilons]


def test_log_axis_ticks_the_values_asked_for():
    from dpplan.report.svg import Series, line_chart

    line = Series(label="a", xs=(0.9, 2.8, 7.5), ys=(60.0, 70.0, 80.0), color="#000")
    svg = line_chart(
        [line],
        title="t",
        x_label="ε",
        y_label="%",
        x_range=(0.7, 11.0),
        log_x=True,
        x_tick_values=(1, 3, 8, 0, -1),  # not positive: no place on a log axis
    )
    assert _X_TICK.findall(svg) == ["1", "3", "8"]
    default = line_chart(
        [line], title="t", x_label="ε", y_label="%", x_range=(0.7, 11.0), log_x=True
    )
    assert _X_TICK.findall(default) == ["1", "2", "5", "10"]


def test_html_loads_nothing_and_escapes_title_and_notes(grid_report):
    page = to_html(grid_report)
    parsed = _parse(page)
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    assert parsed.url_attributes == [] and parsed.event_handlers == []
    assert not {"script", "link", "iframe", "img", "a"} & set(parsed.tags)
    assert not re.search(r"url\s*\(|@import", page)
    assert page.count("://") == page.count("https://e.x") > 0  # the notes' URL, as text
    assert parsed.tags.count("svg") == 1  # the frontier
    assert "".join(parsed.title) == HOSTILE_TITLE
    text = "".join(parsed.text)
    assert HOSTILE_TITLE in text and HOSTILE_NOTES in text
    # The chart: a band and a line per schedule, the frontier ringed, a log ε axis.
    assert page.count("<polygon") == 2 and page.count('r="6" fill="none"') >= 2
    assert "ε of one run at δ = 1e-05 (log scale)" in page
    markdown = to_markdown(grid_report)
    assert "<script>" not in markdown.split("```console")[0]
    assert markdown.splitlines()[0].startswith("# &lt;script&gt;alert\\(")


def test_random_protocol_hides_the_number_of_trials(sweeps, random_report):
    store, _, random = sweeps
    result = frontier_result(store, random).to_dict()
    assert result["tuning"]["protocol"] == "random_repeats"
    s, t = random_report.sweep, random_report.sweep.tuning
    assert s.protocol == "random_repeats" and "runs_tried" in s.withheld
    assert (s.runs_tried, s.trials, s.curves, s.error) == (None, None, (), None)
    assert (t.runs, t.all_runs_epsilon, t.all_runs_method) == (None, None, None)
    assert all(r.runs is None and r.all_runs_epsilon is None for r in t.per_target)
    assert t.repeat_and_select_epsilon == result["tuning"]["repeat_and_select_epsilon"]
    for row, expected in zip(t.per_target, result["tuning"]["per_target"], strict=True):
        assert row.repeat_and_select_epsilon == expected["repeat_and_select_epsilon"]
        plan = next(p for p in s.plans if p.target_epsilon == row.target_epsilon)
        assert row.repeat_and_select_epsilon == dpplan.accounting.repeat_and_select_epsilon(
            dpplan.TrainingPlan.from_dict(
                next(r for r in result["plans"] if r["target_epsilon"] == plan.target_epsilon)[
                    "plan"
                ]
            ),
            mean_runs=3.0,
        )
    # Each point is the selected model alone: its own first-seed run, no repeats, no ids.
    for point, full in zip(s.points, result["points"], strict=True):
        assert (point.seeds, point.run_ids, point.test_accuracy_std) == ((0,), None, None)
        selected = store.get_run(full["run_ids"][0]).records[-1]
        assert point.test_accuracy_mean == selected.test_accuracy
        assert point.validation_accuracy == selected.validation_accuracy
        assert len(full["seeds"]) == 3  # the repeats exist in the store, not in the report
    runs = result["runs_tried"]
    for text in (to_markdown(random_report), to_html(random_report), to_json(random_report)):
        assert not re.search(r"All \d+ runs composed|Runs (stored|tried)|Trials</dt><dd>\d", text)
        assert not re.search(rf"\b{runs} (runs|trials)\b", text)
        assert "Left out on purpose" in text or '"withheld"' in text
    data = json.loads(to_json(random_report))
    assert all(p["run_ids"] is None for p in data["sweep"]["points"])


def test_unknown_sweep_and_bad_title_are_refused(sweeps):
    store = sweeps[0]
    with pytest.raises(NotFoundError, match="sweep_id"):
        build_sweep_report(store, 99)
    with pytest.raises(PlanError, match="title"):
        build_sweep_report(store, sweeps[1], title=" ")


def test_cli_report_sweep_formats_and_refusals(sweeps, tmp_path, capsys, monkeypatch):
    store, grid, _ = sweeps
    monkeypatch.setenv("DPPLAN_HOME", str(store.home))
    assert main(["report", "--sweep", str(grid), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, report_schema())
    assert data["sweep"]["id"] == grid and data["kind"] == "sweep"
    output = tmp_path / "sweep.html"
    home = ["--home", str(store.home)]
    assert (
        main(["report", "--sweep", str(grid), *home, "--format", "html", "--output", str(output)])
        == 0
    )
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert f"sweep {grid}" in capsys.readouterr().err
    for extra in (["--run", "1"], ["--batch-size", "256"], ["--tuning-runs", "3"], ["--stored"]):
        assert main(["report", "--sweep", str(grid), *extra]) == 2
        assert "omitted with --sweep" in capsys.readouterr().err
    assert main(["report", "--sweep", "99"]) == 2
    assert main(["report", "--sweep", "1.5"]) == 2


def test_render_dispatch_and_pdf(grid_report):
    assert render(grid_report, "md") == to_markdown(grid_report)
    pytest.importorskip("weasyprint")
    assert render(grid_report, "pdf").startswith(b"%PDF")


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")
@pytest.mark.parametrize("which", ["grid", "random"])
def test_screenshot_in_chromium(which, grid_report, random_report, tmp_path):
    page = tmp_path / "sweep.html"
    page.write_text(to_html(grid_report if which == "grid" else random_report), encoding="utf-8")
    png = tmp_path / "sweep.png"
    done = subprocess.run(
        [
            chromium_binary(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1100,3000",
            f"file://{page}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), done.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    keep = Path(__import__("os").environ.get("DPPLAN_KEEP_SCREENSHOT", ""))
    if keep.name:
        shutil.copy(png, keep / f"sweep-{which}.png")


def test_app_report_page_offers_the_sweep_report(sweeps, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    store, _, random = sweeps
    monkeypatch.setenv("DPPLAN_HOME", str(store.home))
    app = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    at = AppTest.from_file(str(app), default_timeout=120).run()
    at.switch_page("app_pages/report.py").run()
    at.radio(key="report_source").set_value("a sweep").run()
    assert not at.exception, at.exception
    at.selectbox(key="report_sweep").set_value(random).run()
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download HTML", "Download Markdown", "Download JSON", "Download PDF"]
    code = at.code[0].value  # the Markdown source
    assert code.startswith(f"# DP-SGD frontier report of sweep {random}")
    assert "Left out on purpose" in code


def test_sweep_report_states_its_assumptions_as_fields(grid_report):
    data = json.loads(to_json(grid_report))
    assert data["assumptions"] == {
        "unit": "example",
        "neighbouring_relation": "add_or_remove_one_example",
        "sampling": "poisson",
        "trust_model": "central",
        "covers": ["every_checkpoint", "final_model", "post_processing"],
        "public": ["dataset_size", "validation_data", "test_data"],
    }
    assert "example-level · add-or-remove adjacency · Poisson sampling · central model" in (
        to_markdown(grid_report)
    )


def test_sweep_report_words_what_is_public_from_the_field(grid_report):
    text = to_markdown(grid_report)
    assert "validation examples: they are never trained on" in text
    assert "the test examples: the test set never selects" in text
    private = grid_report.assumptions.model_copy(update={"public": ("dataset_size",)})
    changed = to_markdown(grid_report.model_copy(update={"assumptions": private}))
    assert "validation examples: they are never trained on" not in changed
    assert "the test examples: the test set never selects" not in changed


def test_one_seed_shows_that_no_spread_was_measured(tmp_path):
    store = RunStore(tmp_path / "home")
    sweep_id = store_fake_sweep(store, SweepSpec(**{**GRID, "seeds": (0,)}), _accuracy)
    report = build_sweep_report(store, sweep_id)
    points = [*report.sweep.points, *(p for c in report.sweep.curves for p in c.points)]
    assert points and all(p.test_accuracy_std is None for p in points)
    for text in (to_markdown(report), to_html(report)):
        assert "no spread measured" in text and "± 0.00%" not in text


def test_the_grid_section_shows_plateau_every_only_when_set(tmp_path):
    # Issue 24: a sweep's --plateau-every is one of its settings; a default sweep's report
    # reads as before.
    store = RunStore(tmp_path / "home")
    made = store_fake_sweep(
        store, SweepSpec(**{**GRID, "seeds": (0,), "plateau_every": 5}), _accuracy
    )
    default = store_fake_sweep(store, SweepSpec(**{**GRID, "seeds": (0,)}), _accuracy)
    report = build_sweep_report(store, made)
    assert report.sweep.plateau_every == 5
    assert '"plateau_every": 5' in to_markdown(report)
    assert report_from_dict(json.loads(to_json(report))).sweep.plateau_every == 5
    plain = build_sweep_report(store, default)
    assert plain.sweep.plateau_every is None and "plateau_every" not in to_markdown(plain)
