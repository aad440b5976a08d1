"""Runs whose loss or weights stop being finite end as ``diverged``, and every reader copes.

Issue 17 item 1: such a run was stored as ``finished`` with null losses, then crashed
``dpplan train``, ``runs show`` and ``report --run``. Divergence is forced here by poisoning a
weight after a chosen epoch (or by the issue's own command: lr 100, clipping norm 1e30).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import dpplan
from dpplan.accounting import epoch_epsilons
from dpplan.cli import main
from dpplan.run_policy import epoch_epsilon, run_epsilon
from dpplan.store import EpochRecord
from dpplan.train import Constant, RunOptions, Trainer, start_run, training_set_size
from dpplan.train.compare import compare_schedules
from dpplan.train.core import Diverged


def _options(mnist_dir, **changes):
    values = {
        "subset": 500,
        "validation_size": 500,
        "test_subset": 200,
        "data_dir": str(mnist_dir),
        "device": "cpu",
        "method": "rdp",
    }
    values.update(changes)
    return RunOptions(**values)


def _plan(options, epochs=3):
    return dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=64,
        noise_multiplier=1.0,
        epochs=epochs,
        delta=1e-5,
    )


def _poison_after(epoch: int, trainer_box: list):
    """An on_epoch callback that makes a weight NaN after ``epoch`` (the next epoch's
    first loss is then NaN)."""

    def on_epoch(record: EpochRecord) -> None:
        if record.epoch == epoch:
            with torch.no_grad():
                next(trainer_box[0].model.parameters()).view(-1)[0] = math.nan

    return on_epoch


@pytest.mark.parametrize("engine", ["fused", "opacus"])
def test_the_issues_command_ends_diverged_and_readers_cope(mnist_dir, store, capsys, engine):
    flags = [
        "train",
        "--subset", "500", "--validation-size", "500", "--test-subset", "200",
        "--batch-size", "64", "--noise-multiplier", "1", "--epochs", "2", "--delta", "1e-5",
        "--schedule", "constant", "--lr", "100", "--max-grad-norm", "1e30",
        "--data-dir", str(mnist_dir), "--device", "cpu", "--engine", engine,
    ]  # fmt: skip
    assert main(flags) == 1
    captured = capsys.readouterr()
    assert "unexpected" not in captured.err
    assert "run 1: diverged (diverged in epoch 1: the training loss was nan" in captured.out
    assert "error: run 1 diverged in epoch 1" in captured.err
    run = store.get_run(1)
    assert run.status == "diverged" and "privacy spent is ε=" in run.stop_reason
    assert main(["runs", "show", "1"]) == 0
    assert "run 1: diverged" in capsys.readouterr().out
    assert main(["runs"]) == 0
    listed = capsys.readouterr().out
    # No epoch is recorded, but epoch 1's steps touched the data: its ε is shown.
    value, method = run_epsilon(run)
    assert "diverged" in listed and f"{value:.4f} ({method})" in listed


def test_divergence_in_a_later_epoch_keeps_the_epochs_before(mnist_dir, store, capsys):
    options = _options(mnist_dir)
    plan = _plan(options)
    box: list = []
    real_init = Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        box.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "__init__", init)
        run = start_run(
            plan, Constant(lr=0.1), options, store=store, on_epoch=_poison_after(1, box)
        )
    assert run.status == "diverged"
    assert [r.epoch for r in run.records] == [1]  # epoch 1 and its ε are kept
    assert run.records[0].epsilons and math.isfinite(run.records[0].validation_loss)
    assert run.stop_reason.startswith("diverged in epoch 2: the training loss was nan at step 1")
    assert "epoch 1 is kept" in run.stop_reason
    # ε after the diverged epoch counts: its steps touched the data. The run shows it, and
    # its report accounts both epochs.
    epsilons = epoch_epsilons(plan)[1]
    assert f"ε={min(epsilons.values()):.4g}" in run.stop_reason
    assert run.diverged_epoch == 2 == run.epochs_spent
    method = min(epsilons, key=epsilons.get)
    assert run_epsilon(run) == (epsilons[method], method)
    # Every reader shows it: runs show, the run report (JSON, Markdown), runs --json.
    assert main(["runs", "show", str(run.id)]) == 0
    assert f"run {run.id}: diverged" in capsys.readouterr().out
    assert main(["report", "--run", str(run.id), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["status"] == "diverged" and report["epochs"] == 2
    assert report["accounting"]["epsilon"] == pytest.approx(epsilons[method])
    assert "diverged in epoch 2" in report["run"]["stop_reason"]
    assert main(["report", "--run", str(run.id)]) == 0
    assert "diverged in epoch 2" in capsys.readouterr().out


def test_nan_weights_after_the_last_step_are_divergence(mnist_dir):
    options = _options(mnist_dir)
    trainer = Trainer(_plan(options, epochs=1), Constant(lr=0.1), options)
    real_step = trainer.engine.step

    def step(images, labels):
        loss = real_step(images, labels)
        if trainer.engine.steps == trainer.plan.steps_per_epoch:  # the epoch's last step
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = math.inf
        return loss

    trainer.engine.step = step
    recorded = []
    status, reason = trainer.run(on_epoch=recorded.append)
    assert status == "diverged" and recorded == []
    assert "the weights were not finite after step" in reason


def test_a_finished_run_with_nan_losses_from_an_older_dpplan_reads_as_diverged(store, capsys):
    plan = dpplan.TrainingPlan(
        dataset_size=500, batch_size=64, noise_multiplier=1.0, epochs=2, delta=1e-5
    )
    run_id = store.create_run(
        plan=plan,
        schedule=Constant(lr=100).to_dict(),
        options=RunOptions(subset=500, validation_size=500).to_dict(),
        device="cpu",
        seed=0,
        private=True,
        versions={},
    )
    for epoch, loss in ((1, 2.3), (2, math.nan)):
        store.record_epoch(
            run_id,
            EpochRecord(
                epoch=epoch,
                steps=8 * epoch,
                epsilon=1.0 * epoch,
                epsilon_rdp=1.1 * epoch,
                epsilon_opacus=1.1 * epoch,
                train_loss=loss,
                validation_loss=math.nan,
                validation_accuracy=0.07,
                test_accuracy=0.08,
                lr=100.0,
                seconds=0.2,
            ),
        )
    store.finish_run(run_id, status="finished")  # what the old trainer did
    run = store.get_run(run_id)
    assert run.status == "diverged" and "diverged by epoch 1" in run.stop_reason
    assert math.isnan(run.records[1].train_loss)
    assert main(["runs", "show", str(run_id)]) == 0
    assert "diverged" in capsys.readouterr().out
    assert main(["report", "--run", str(run_id), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["status"] == "diverged"


def test_compare_never_selects_a_diverged_run(mnist_dir, store, monkeypatch):
    options = _options(mnist_dir)
    plan = _plan(options, epochs=2)
    real = Trainer.train_epoch

    def train_epoch(self, *args, epoch=0, **kwargs):
        # The run with lr 0.5 diverges in its last epoch, after an epoch that scored best; so
        # does the repeat of the selected rate with seed 1.
        if (self.schedule.lr == 0.5 or self.options.seed == 1) and epoch == 2:
            raise Diverged(epoch, "forced by the test")
        return real(self, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    monkeypatch.setattr(
        Trainer, "finish_epoch", _scored(Trainer.finish_epoch, {0.5: 0.99, 0.05: 0.5})
    )
    result = compare_schedules(
        plan,
        grids={"constant": (Constant(lr=0.5), Constant(lr=0.05))},
        seeds=(0, 1),
        options=options,
        store=store,
    )
    [summary] = result.summaries
    assert summary.selected["lr"] == 0.05
    statuses = {(run.schedule["lr"], run.seed): run.status for run in store.list_runs()}
    assert statuses == {(0.5, 0): "diverged", (0.05, 0): "finished", (0.05, 1): "diverged"}
    # The diverged repeat is listed, but left out of the mean: both epochs, seed 0 alone.
    assert len(summary.run_ids) == 2 and summary.epochs == (1, 2)
    assert summary.accuracy_std == (0.0, 0.0) and len(summary.final_values) == 1  # one seed
    # ε per epoch is the smallest bound, named.
    first = store.get_run(summary.run_ids[0])
    assert summary.epsilons == tuple(epoch_epsilon(r, "rdp")[0] for r in first.records)
    assert summary.epsilon_methods == tuple(epoch_epsilon(r, "rdp")[1] for r in first.records)


def _scored(real, accuracy_by_lr):
    """Wrap finish_epoch so each run's validation accuracy is the given one."""
    import dataclasses

    def finish_epoch(self, *args, **kwargs):
        record = real(self, *args, **kwargs)
        return dataclasses.replace(record, validation_accuracy=accuracy_by_lr[self.schedule.lr])

    return finish_epoch
