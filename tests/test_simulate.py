"""Simulated plans (issue 22): B/K, σ/K, exactly the plan's steps; refusals name `simulate`."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import dpplan
from dpplan import PhasedPlan, PlanError, TrainingPlan
from dpplan.simulate import (
    ROUNDING_TOLERANCE,
    Simulation,
    calibration,
    composed_trials_epsilon,
    marking,
    simulate,
    simulated_plan,
)

PLAN = TrainingPlan(dataset_size=55000, batch_size=512, noise_multiplier=1.0, epochs=2, delta=1e-5)


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16])
def test_batch_and_noise_scale_by_k_and_steps_stay(k):
    sim = simulated_plan(PLAN, k)
    (phase,) = sim.phases
    assert phase.batch_size == 512 // k
    assert phase.noise_multiplier == 1.0 / k
    assert sim.total_steps == PLAN.total_steps == 216
    assert phase.dataset_size == PLAN.dataset_size and phase.delta == PLAN.delta
    assert phase.max_grad_norm == PLAN.max_grad_norm
    # the noise on the averaged gradient, σC/B, is the plan's
    assert phase.noise_multiplier / phase.batch_size == pytest.approx(1.0 / 512, rel=1e-15)
    # the same steps at a K times smaller batch span about E/K epochs, ending mid-epoch
    assert sim.epoch_ends()[-1] == 216
    assert phase.steps_per_epoch == math.ceil(55000 / (512 // k))


def test_simulated_steps_stop_mid_epoch():
    sim = simulated_plan(PLAN, 4)
    (phase,) = sim.phases
    assert phase.total_steps > 216  # whole epochs would run more steps than the plan
    assert sim.phase_steps == (216,)
    assert sim.mechanisms() == ((128 / 55000, 0.25, 216),)


def test_rounding_within_tolerance_is_nearest_and_reported():
    plan = PLAN.replace(batch_size=1000)  # 1000 / 16 = 62.5 rounds to 63 (0.8% off)
    sim = simulate(plan, 16)
    assert sim.simulated.phases[0].batch_size == 63
    assert sim.simulated.phases[0].noise_multiplier == 1.0 / 16
    assert sim.noise_per_step_ratio == pytest.approx(62.5 / 63)
    assert abs(sim.noise_per_step_ratio - 1) <= ROUNDING_TOLERANCE


def test_rounding_beyond_tolerance_is_refused():
    plan = PLAN.replace(batch_size=20)  # 20 / 8 = 2.5 rounds to 3: noise per step 17% off
    with pytest.raises(PlanError, match="simulate") as caught:
        simulated_plan(plan, 8)
    assert caught.value.field == "simulate"
    assert "2, 4, 5" in caught.value.hint  # the K that divide B


@pytest.mark.parametrize("k", [0, -2, 2.5, "4", True, math.nan, None])
def test_k_not_a_positive_integer_is_refused(k):
    with pytest.raises(PlanError) as caught:
        simulated_plan(PLAN, k)
    assert caught.value.field == "simulate"


def test_k_above_batch_is_refused():
    with pytest.raises(PlanError, match="B/K") as caught:
        simulated_plan(PLAN.replace(batch_size=8), 16)
    assert caught.value.field == "simulate"


def test_sigma_below_minimum_is_refused():
    with pytest.raises(PlanError, match="σ/K") as caught:
        simulated_plan(PLAN.replace(noise_multiplier=0.1), 16)
    assert caught.value.field == "simulate"


def test_phased_plan_scales_every_phase_and_keeps_its_steps():
    second = PLAN.replace(batch_size=1024, epochs=3)
    plan = PhasedPlan(phases=[PLAN, second], phase_steps=[None, 100])
    sim = simulated_plan(plan, 4)
    assert [p.batch_size for p in sim.phases] == [128, 256]
    assert [p.noise_multiplier for p in sim.phases] == [0.25, 0.25]
    assert sim.steps_per_phase == plan.steps_per_phase == (216, 100)


def test_not_a_plan_is_refused():
    with pytest.raises(PlanError) as caught:
        simulated_plan({"batch_size": 512}, 2)
    assert caught.value.field == "plan"


def test_trial_epsilon_is_the_simulated_plans_and_large():
    sim = simulate(PLAN, 4)
    trial = sim.trial_epsilon("rdp")
    assert trial == dpplan.epsilon(sim.simulated, method="rdp")
    assert trial > 10 * dpplan.epsilon(PLAN, method="rdp")
    assert sim.data == "training" and sim.label == "predicted (sim K=4)"


def test_public_validation_data_costs_no_training_epsilon():
    sim = simulate(PLAN, 8, data="validation", public_size=5000)
    assert sim.trial_epsilon() == 0.0
    (phase,) = sim.simulated.phases
    assert phase.dataset_size == 5000 and phase.batch_size == 64
    assert sim.simulated.total_steps == PLAN.total_steps
    assert "public validation data" in sim.label
    assert sim.to_dict()["data"] == "validation"


def test_public_data_options_are_checked():
    with pytest.raises(PlanError) as caught:
        simulate(PLAN, 8, data="validation")
    assert caught.value.field == "public_size"
    with pytest.raises(PlanError) as caught:
        simulate(PLAN, 8, data="test")
    assert caught.value.field == "data"
    with pytest.raises(PlanError, match="at most the 100") as caught:
        simulate(PLAN, 2, data="validation", public_size=100)
    assert caught.value.field == "simulate"


def test_simulation_round_trips_to_json_dict():
    sim = simulate(PLAN, 2)
    data = sim.to_dict()
    assert PhasedPlan.from_dict(data["simulated"]) == sim.simulated
    assert isinstance(sim, Simulation) and data["k"] == 2


def test_module_imports_no_torch():
    code = "import dpplan.simulate, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trials_compose_to_one_run_of_their_summed_steps():
    sim = simulated_plan(PLAN, 2)  # 216 steps at σ/2 (K = 4's large ε costs PRV and PLD ~15 s)
    (phase,) = sim.phases
    result = composed_trials_epsilon([(sim, 100), (sim, 100), (sim, 50)], delta=1e-5)
    longer = PhasedPlan(phases=[phase.replace(epochs=3)], phase_steps=[250])
    assert result["total_steps"] == 250 and result["mechanisms"] == 1 and result["runs"] == 3
    assert result["epsilon"] == pytest.approx(dpplan.compare(longer).headline_epsilon)
    assert result["epsilon"] > dpplan.compare(sim).headline_epsilon


def test_trials_of_two_plans_compose_as_a_phased_plan():
    one, two = simulated_plan(PLAN, 2), simulated_plan(PLAN.replace(noise_multiplier=2.0), 2)
    result = composed_trials_epsilon([(one, 100), (two, 100)], delta=1e-5)
    both = PhasedPlan(phases=[one.phases[0], two.phases[0]], phase_steps=[100, 100])
    assert result["mechanisms"] == 2
    assert result["epsilon"] == pytest.approx(dpplan.compare(both).headline_epsilon)


def test_composed_trials_refuse_bad_runs():
    with pytest.raises(PlanError):
        composed_trials_epsilon([], delta=1e-5)
    with pytest.raises(PlanError):
        composed_trials_epsilon([(PLAN, PLAN.total_steps + 1)], delta=1e-5)


def test_calibration_is_read_from_the_file_and_absent_ks_are_none(tmp_path):
    file = tmp_path / "cal.json"
    file.write_text(
        json.dumps(
            {
                "seeds": 3,
                "machine": "m",
                "date": "d",
                "per_k": [
                    {
                        "k": 4,
                        "mean_abs_error_points": 0.8,
                        "worst_abs_error_points": 2.5,
                        "mean_signed_error_points": -0.5,
                        "configs": 12,
                        "runs_simulated": 36,
                        "cost_ratio": 3.0,
                    }
                ],
            }
        )
    )
    found = calibration(4, path=file)
    assert found["mean_abs_error_points"] == 0.8 and found["worst_abs_error_points"] == 2.5
    assert calibration(8, path=file) is None
    assert calibration(4, path=tmp_path / "missing.json") is None


def test_marking_names_k_data_and_label():
    mark = marking(8, "validation")
    assert mark["predicted_by_simulation"] == 8 and mark["simulation_data"] == "validation"
    assert mark["label"] == "predicted (sim K=8, on public validation data)"
    assert set(mark) == {"predicted_by_simulation", "simulation_data", "label", "calibration"}
    with pytest.raises(PlanError):
        marking(0)


# -- a simulated sweep, trained for real on a tiny MNIST ---------------------------------------


def _tiny_spec(mnist_dir, **changes):
    from dpplan.sweep import SweepSpec
    from dpplan.train import RunOptions

    options = RunOptions(
        subset=2000,
        validation_size=500,
        test_subset=500,
        device="cpu",
        data_dir=str(mnist_dir),
        download=False,
        engine="fused",
        threads=1,
    )
    values = {
        "target_epsilons": (2,),
        "delta": 1e-5,
        "batch_sizes": (256,),
        "epochs": (1,),
        "schedules": ("one_cycle",),
        "one_cycle_lrs": (0.5,),
        "seeds": (0,),
        "options": options,
        "method": "rdp",
    }
    return SweepSpec(**{**values, **changes})


@pytest.mark.parametrize("data", ["training", "validation"])
def test_a_simulated_sweep_trains_the_simulated_plan_and_marks_its_points(
    mnist_dir, tmp_path, data
):
    from dpplan.store import RunStore
    from dpplan.sweep import LocalExecutor, create_sweep, protocol, run_sweep

    spec = _tiny_spec(mnist_dir, simulate=4, simulate_data=data)
    store = RunStore(tmp_path / "home")
    executor = LocalExecutor()
    sweep_id = create_sweep(spec, store=store, executor=executor)
    result = run_sweep(sweep_id, store=store, executor=executor)
    (solved,) = protocol.plans_from_dict(store.get_sweep(sweep_id).plans).values()
    (run,) = [r for r in store.list_runs() if r.group_id == f"sweep-{sweep_id}"]
    # the trial trained B/K with σ/K for exactly the solved plan's steps
    assert isinstance(run.plan, PhasedPlan)
    (phase,) = run.plan.phases
    assert phase.batch_size == 64 and phase.noise_multiplier == solved.noise_multiplier / 4
    assert run.plan.total_steps == solved.total_steps == run.records[-1].steps
    assert phase.dataset_size == (2000 if data == "training" else 250)
    # the point sits at the solved plan's ε and says it is a prediction, with which data
    (point,) = result.points
    assert point.epsilon <= 2 and result.simulation["predicted_by_simulation"] == 4
    (marked,) = result.to_dict()["points"]
    assert marked["predicted_by_simulation"] == 4 and marked["simulation_data"] == data
    assert marked["label"].startswith("predicted (sim K=4")
    tuning = result.tuning
    assert tuning.simulation["simulation_data"] == data
    if data == "training":  # the trial's own ε counts, and it is far above the plan's
        # composed by RDP alone (TRIAL_METHODS): one trial, so the trial plan's RDP ε
        assert tuning.all_runs_method == "rdp"
        trial = dpplan.epsilon(run.plan, method="rdp")
        assert tuning.all_runs_epsilon == pytest.approx(trial, rel=1e-9)
        assert tuning.all_runs_epsilon > 5 * tuning.single_run_epsilon
    else:  # trained on public validation data: no training-data ε
        assert tuning.all_runs_epsilon == 0.0
        assert "validation split" in tuning.covers["simulation"]


def test_a_simulated_sweep_refuses_sigma_over_k_below_the_minimum(mnist_dir, tmp_path):
    from dpplan.store import RunStore
    from dpplan.sweep import create_sweep

    store = RunStore(tmp_path / "home")
    spec = _tiny_spec(mnist_dir, target_epsilons=(50,), simulate=128)  # σ ≈ 0.3: σ/128 < 0.01
    with pytest.raises(PlanError) as caught:
        create_sweep(spec, store=store)
    assert caught.value.field == "simulate"
    assert store.list_sweeps() == []


# -- the report of a simulated sweep -------------------------------------------------------------


def test_the_report_of_a_simulated_sweep_marks_every_point_as_predicted(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from sweep_fakes import store_fake_sweep

    from dpplan.report import build_sweep_report
    from dpplan.report.model import report_from_dict, report_schema
    from dpplan.report.render import to_html, to_json, to_markdown
    from dpplan.store import RunStore
    from dpplan.sweep import SweepSpec
    from dpplan.train import RunOptions

    spec = SweepSpec(
        target_epsilons=(1, 3),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle",),
        one_cycle_lrs=(0.5, 2),
        seeds=(0, 1),
        options=RunOptions(subset=2000),
        simulate=2,
    )
    store = RunStore(tmp_path / "home")
    sweep_id = store_fake_sweep(store, spec, lambda t: 0.5 + 0.1 * t.lr + 0.05 * t.target_epsilon)
    report = build_sweep_report(store, sweep_id, created_at="2026-12-03T00:00:00Z")
    sim = report.sweep.simulation
    assert sim is not None and sim.k == 2 and sim.data == "training"
    assert sim.label == "predicted (sim K=2)" and sim.all_trials_epsilon > 0
    (warning,) = [w for w in report.warnings if "predicted (sim K=2)" in w]
    assert "B/K with σ/K" in warning and "their own ε counts" in warning
    markdown, html = to_markdown(report), to_html(report)
    assert "predicted \\(sim K=2\\)" in markdown and "predicted (sim K=2)" in html
    data = json.loads(to_json(report))
    jsonschema.validate(data, report_schema())
    assert report_from_dict(data) == report
