"""SweepSpec: validated at construction, NaN-safe, bounded, round-trips through dicts."""

from __future__ import annotations

import math

import pytest

from dpplan.errors import PlanError
from dpplan.sweep import MAX_TRIALS, SweepSpec
from dpplan.train import RunOptions

OPTIONS = RunOptions(subset=2000, validation_size=500)


def spec(**changes):
    values = {
        "target_epsilons": (1, 3),
        "delta": 1e-5,
        "batch_sizes": (256,),
        "epochs": (1,),
        "schedules": ("one_cycle", "plateau"),
        "one_cycle_lrs": (0.5, 2),
        "plateau_lrs": (0.1, 0.5),
        "seeds": (0, 1),
        "options": OPTIONS,
    }
    values.update(changes)
    return SweepSpec(**values)


def test_round_trip_and_normalisation():
    made = spec(target_epsilons=[3, 1.0])
    assert made.target_epsilons == (1.0, 3.0)
    assert SweepSpec.from_dict(made.to_dict()) == made
    # two ε x (2 schedules x 2 LRs + 2 groups x 1 repeat)
    assert made.trial_count == 12


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"target_epsilons": (math.nan,)}, "target_epsilon"),
        ({"target_epsilons": (1, 1)}, "target_epsilons"),
        ({"target_epsilons": ()}, "target_epsilons"),
        ({"target_epsilons": 1.0}, "target_epsilons"),
        ({"target_epsilons": (0,)}, "target_epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"batch_sizes": (True,)}, "batch_size"),
        ({"batch_sizes": (2001,)}, "batch_size"),
        ({"epochs": (1.5,)}, "epochs"),
        ({"schedules": ("cosine",)}, "schedule"),
        ({"one_cycle_lrs": ()}, "one_cycle_lrs"),
        ({"plateau_lrs": (math.inf,)}, "lr"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"method": "exact"}, "method"),
        ({"random_repeats": math.nan}, "random_repeats"),
        # dp-accounting needs a mean >= 1: 0.5 trained every trial, then failed to account.
        ({"random_repeats": 0.5}, "random_repeats"),
        # noise from a public seed has no guarantee, and trials would share their noise
        (
            {"options": RunOptions(subset=2000, validation_size=500, reproducible=True)},
            "reproducible",
        ),
        ({"options": RunOptions(subset=2000, validation_size=500, private=False)}, "options"),
        (
            {"options": RunOptions(subset=2000, validation_size=500, target_epsilon=2)},
            "target_epsilon",
        ),
        ({"options": {"subset": 2000}}, "options"),
    ],
)
def test_invalid_fields_are_named(changes, field):
    with pytest.raises(PlanError) as caught:
        spec(**changes)
    assert caught.value.field == field


def test_absurd_grid_is_refused_before_anything_runs():
    with pytest.raises(PlanError, match=f"at most {MAX_TRIALS} trials") as caught:
        spec(
            target_epsilons=tuple(range(1, 21)),
            batch_sizes=tuple(range(100, 120)),
            epochs=(1, 2, 3),
        )
    assert caught.value.field == "trials"


def test_unused_schedule_may_have_no_rates():
    made = spec(schedules=("one_cycle",), plateau_lrs=(), constant_lrs=())
    assert made.plateau_lrs == () and made.trial_count == 2 * (2 + 1)


def test_from_dict_refuses_unknown_and_missing_keys():
    data = spec().to_dict()
    with pytest.raises(PlanError, match="not a sweep field"):
        SweepSpec.from_dict({**data, "grid": 1})
    del data["delta"]
    with pytest.raises(PlanError) as caught:
        SweepSpec.from_dict(data)
    assert caught.value.field == "delta"


# -- issue 22: simulated sweeps ----------------------------------------------------------------


def test_simulate_is_kept_and_round_trips():
    made = spec(simulate=4, simulate_data="validation")
    assert made.simulate == 4 and made.simulate_data == "validation"
    assert SweepSpec.from_dict(made.to_dict()) == made
    assert spec().simulate is None and spec().simulate_data == "training"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"simulate": 1}, "simulate"),  # K = 1 is the plan itself: omit simulate
        ({"simulate": 0}, "simulate"),
        ({"simulate": 2.5}, "simulate"),
        ({"simulate": True}, "simulate"),
        ({"simulate": 512}, "simulate"),  # B/K < 1 for B = 256
        ({"simulate": 8, "batch_sizes": (100,)}, "simulate"),  # 12.5 -> 13: 3.8% off
        ({"simulate": 2, "random_repeats": 4.0}, "simulate"),
        ({"simulate_data": "validation"}, "simulate_data"),  # only with simulate
        ({"simulate": 2, "simulate_data": "test"}, "simulate_data"),
    ],
)
def test_invalid_simulation_fields_are_named(changes, field):
    with pytest.raises(PlanError) as caught:
        spec(**changes)
    assert caught.value.field == field
