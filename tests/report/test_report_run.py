"""The report of a real run: the trainer's CPU smoke run on 1,000 MNIST examples."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from test_report_render import assert_tables_parse

import dpplan
from dpplan.report import (
    build_run_report,
    report_from_dict,
    report_schema,
    to_html,
    to_json,
    to_markdown,
)
from dpplan.run_policy import epoch_epsilon


@pytest.fixture(scope="module")
def run_report(smoke_run):
    store, run = smoke_run
    return build_run_report(store, run.id, title="Smoke run", notes="CPU smoke test.")


def test_run_report_numbers(smoke_run, run_report):
    _, run = smoke_run
    assert run.status == "finished"
    report = run_report
    expected = dpplan.compare(run.plan)
    assert report.kind == "run" and report.run.id == run.id
    assert report.epsilon == expected.headline_epsilon
    for got, want in zip(report.accounting.curves, expected.curves, strict=True):
        assert got.epsilons == want.epsilons
    # Per-epoch records are the stored ones, Opacus' ε beside dpplan's.
    assert len(report.run.epochs) == run.plan.epochs
    for got, want in zip(report.run.epochs, run.records, strict=True):
        assert (
            got.epoch,
            got.steps,
            got.epsilon_rdp,
            got.epsilon_opacus,
            got.test_accuracy,
            got.validation_accuracy,
            got.seconds,
        ) == (
            want.epoch,
            want.steps,
            want.epsilon_rdp,
            want.epsilon_opacus,
            want.test_accuracy,
            want.validation_accuracy,
            want.seconds,
        )
        assert (got.epsilon, got.method) == epoch_epsilon(want, run.method)
        assert not hasattr(got, "train_loss")  # computed on private batches without noise
        assert got.epsilon_opacus == pytest.approx(got.epsilon_rdp, rel=1e-3)
    assert report.run.opacus_max_relative_difference < 1e-2
    assert report.run.training_seconds == pytest.approx(math.fsum(r.seconds for r in run.records))
    assert (report.run.device, report.run.seed, report.run.status) == ("cpu", 0, "finished")
    assert report.run.recorded_method == "rdp" and report.run.steps_counted == run.plan.total_steps


def test_run_report_validates_and_renders(run_report):
    data = json.loads(to_json(run_report))
    jsonschema.validate(data, report_schema())
    assert report_from_dict(data) == run_report
    text = to_markdown(run_report)
    assert "## 5. Training run" in text and "ε Opacus RDP" in text
    assert "DPOptimizer" in text and "constant learning rate 0.3" in text
    assert "Poisson, as assumed" in text and "training loss" in text
    assert_tables_parse(text)
    page = to_html(run_report)
    assert page.count("<svg") == 4  # ε curve, accuracy and loss against ε, membership bound
    assert "Opacus" in page and "CPU smoke test." in page
    assert "Mean training loss" not in page  # only validation loss is plotted
