"""Plateau schedules stepped every N optimizer steps (issue 24): the spec field, the
controller, and the trainer's evaluation hook on a tiny real-MNIST run."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import dpplan
from dpplan.errors import PlanError
from dpplan.train import Plateau, RunOptions, start_run, training_set_size
from dpplan.train.schedules import make_optimizer, make_scheduler, schedule_from_dict

# --- the spec --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", math.nan, math.inf])
def test_evaluate_every_is_validated_naming_the_field(value):
    with pytest.raises(PlanError) as info:
        Plateau(lr=0.1, evaluate_every=value)
    assert info.value.field == "evaluate_every"


def test_evaluate_every_round_trips_and_old_mappings_read_back_as_before():
    spec = Plateau(lr=0.1, patience=2, evaluate_every=25.0)
    assert spec.evaluate_every == 25 and type(spec.evaluate_every) is int
    assert spec.to_dict()["evaluate_every"] == 25
    assert schedule_from_dict(spec.to_dict()) == spec
    default = Plateau(lr=0.1)
    # A default plateau's mapping is the one stored before the field existed.
    assert default.to_dict() == {
        "kind": "plateau",
        "lr": 0.1,
        "momentum": 0.0,
        "factor": 0.1,
        "patience": 1,
        "min_lr": 1e-5,
    }
    assert schedule_from_dict(default.to_dict()).evaluate_every is None
    assert schedule_from_dict({**default.to_dict(), "evaluate_every": None}) == default


# --- the controller --------------------------------------------------------------------


def _controller(spec, total_steps=100):
    optimizer = make_optimizer(spec, torch.nn.Linear(2, 1).parameters())
    return make_scheduler(spec, optimizer, total_steps=total_steps), optimizer


def test_evaluations_are_due_every_n_steps_and_patience_counts_them():
    controller, optimizer = _controller(
        Plateau(lr=1.0, factor=0.5, patience=1, min_lr=0.0, evaluate_every=3)
    )
    due, lrs = [], []
    for _ in range(12):
        optimizer.step()
        controller.after_step()
        due.append(controller.evaluation_due())
        if due[-1]:
            controller.after_evaluation(2.0)  # never improves after the first
            lrs.append(controller.current_lr())
    assert [i + 1 for i, d in enumerate(due) if d] == [3, 6, 9, 12]
    # best at evaluation 1; evaluations 2 and 3 do not improve (patience 1) -> halved at 3.
    assert lrs == [1.0, 1.0, 0.5, 0.5]
    controller.after_epoch(2.0)  # the epoch no longer steps this plateau
    controller.after_epoch(2.0)
    assert controller.current_lr() == 0.5


def test_a_per_epoch_plateau_ignores_step_evaluations():
    controller, optimizer = _controller(Plateau(lr=1.0, factor=0.5, patience=0, min_lr=0.0))
    for _ in range(5):
        optimizer.step()
        controller.after_step()
        assert not controller.evaluation_due()
        controller.after_evaluation(3.0)
    assert controller.current_lr() == 1.0
    controller.after_epoch(3.0)
    controller.after_epoch(3.0)
    assert controller.current_lr() == 0.5
    with pytest.raises(PlanError, match="validation_loss"):
        controller.after_evaluation("low")


# --- the trainer -----------------------------------------------------------------------


def _options(mnist_dir, **changes):
    values = {
        "subset": 1200,
        "validation_size": 300,
        "test_subset": 200,
        "data_dir": str(mnist_dir),
        "device": "cpu",
        "method": "rdp",
        "seed": 5,
        "threads": 1,
        "reproducible": True,
    }
    values.update(changes)
    return RunOptions(**values)


def _plan(options, epochs=1):
    return dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=64,
        noise_multiplier=1.0,
        epochs=epochs,
        delta=1e-4,
    )


@pytest.mark.parametrize("engine", ["fused", "opacus"])
def test_a_stalled_plateau_reduces_the_lr_within_one_epoch(mnist_dir, store, engine):
    options = _options(mnist_dir, engine=engine)
    plan = _plan(options)
    assert plan.steps_per_epoch > 8
    # An LR so small the validation loss cannot improve by torch's relative 1e-4.
    stalled = {"lr": 1e-6, "factor": 0.5, "patience": 0, "min_lr": 0.0}
    per_epoch = start_run(plan, Plateau(**stalled), options, store=store)
    assert per_epoch.records[0].lr == 1e-6  # one epoch: the per-epoch plateau never acts
    every = start_run(plan, Plateau(**stalled, evaluate_every=4), options, store=store)
    evaluations = plan.steps_per_epoch // 4
    # The first evaluation sets the best loss, every later one halves the LR.
    assert every.records[0].lr == pytest.approx(1e-6 * 0.5 ** (evaluations - 1))
    # Recorded with the run, and read back as the same spec.
    assert schedule_from_dict(store.get_run(every.id).schedule) == Plateau(
        **stalled, evaluate_every=4
    )
    assert "evaluate_every" not in store.get_run(per_epoch.id).schedule
    # Public validation data only: ε is the same.
    assert every.records[0].epsilon == per_epoch.records[0].epsilon
    assert every.records[0].epsilons == per_epoch.records[0].epsilons


def _comparable(record):
    values = dataclasses.asdict(record)
    values.pop("seconds")
    return values


def test_evaluations_that_never_reduce_leave_the_run_bit_identical(mnist_dir, store):
    options = _options(mnist_dir)
    plan = _plan(options, epochs=2)
    default = start_run(plan, Plateau(lr=0.3, patience=1), options, store=store)
    # Evaluated every 3 steps, but patience so large the LR never changes: the extra
    # evaluations must not touch the model, the random state or the records.
    patient = start_run(
        plan, Plateau(lr=0.3, patience=10_000, evaluate_every=3), options, store=store
    )
    never = start_run(plan, Plateau(lr=0.3, patience=1, evaluate_every=10**9), options, store=store)
    assert len(default.records) == 2
    expected = [_comparable(r) for r in default.records]
    assert [_comparable(r) for r in patient.records] == expected
    # evaluate_every past the run's end and patience 1: only the LR could differ, and the
    # per-epoch plateau did not act in this run either.
    assert [_comparable(r) for r in never.records] == expected


def test_a_resumed_run_continues_the_step_evaluations(mnist_dir, store):
    from dpplan.train import resume

    options = _options(mnist_dir)
    plan = _plan(options, epochs=2)
    assert plan.steps_per_epoch % 5  # evaluations straddle the epoch boundary
    spec = Plateau(lr=1e-6, factor=0.5, patience=1, min_lr=0.0, evaluate_every=5)
    whole = start_run(plan, spec, options, store=store)
    ids = []
    stopped = start_run(
        plan,
        spec,
        options,
        store=store,
        on_start=lambda r: ids.append(r.id),
        on_epoch=lambda r: store.request_stop(ids[0]),
    )
    assert stopped.status == "stopped" and len(stopped.records) == 1
    resumed = resume(stopped.id, store=store)
    assert resumed.status == "finished"
    assert [_comparable(r) for r in resumed.records] == [_comparable(r) for r in whole.records]
    assert whole.records[-1].lr < whole.records[0].lr < 1e-6  # it acted in both epochs


# --- the CLI ---------------------------------------------------------------------------


def _cli_flags(mnist_dir):
    return [
        *("--batch-size", "64", "--noise-multiplier", "1.0", "--epochs", "1"),
        *("--delta", "1e-4", "--subset", "1000", "--validation-size", "200"),
        *("--test-subset", "200", "--data-dir", str(mnist_dir), "--device", "cpu"),
        *("--method", "rdp", "--schedule", "plateau"),
    ]


def test_cli_plateau_every_is_recorded_and_acts(mnist_dir, store, capsys):
    from dpplan.cli import main

    flags = _cli_flags(mnist_dir)
    command = ["train", *flags, "--lr", "1e-4", "--plateau-every", "5", "--reproducible"]
    assert main([*command, "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["schedule"]["evaluate_every"] == 5
    assert run["plan"]["steps_per_epoch"] >= 15  # at least 3 evaluations
    # Stalled at lr 1e-4 with the default patience 1 and factor 0.1: cut to min_lr 1e-5
    # within the single epoch.
    assert run["records"][0]["lr"] == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--plateau-every", "0"], "plateau_every=0"),
        (["--plateau-every", "2.5"], "plateau_every=2.5"),
        (["--plateau-every", "x"], "plateau_every='x'"),
        (["--plateau-every", "4", "--schedule", "constant"], "--schedule plateau"),
        (["--plateau-every", "4", "--schedule", "one_cycle"], "--schedule plateau"),
    ],
)
def test_cli_bad_plateau_every_exits_2_and_stores_nothing(mnist_dir, store, capsys, flags, message):
    from dpplan.cli import main

    assert main(["train", *_cli_flags(mnist_dir), "--lr", "0.1", *flags]) == 2
    assert message in capsys.readouterr().err
    assert store.list_runs() == []
