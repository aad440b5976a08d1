"""Tests for dpplan.plan.TrainingPlan: validation, derived values, replace, (de)serialisation.

Every validation branch is checked for both the class (PlanError, also a ValueError) and
the field and value in the message (STYLE §3.9 item 6).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpplan.errors import DpplanError, PlanError
from dpplan.plan import (
    MAX_DATASET_SIZE,
    MAX_EPOCHS,
    MAX_TOTAL_STEPS,
    NOISE_MULTIPLIER_MAX,
    NOISE_MULTIPLIER_MIN,
    TrainingPlan,
)

BASE = {
    "dataset_size": 60000,
    "batch_size": 256,
    "noise_multiplier": 1.1,
    "epochs": 10,
    "delta": 1e-5,
}
NAN = float("nan")
INF = float("inf")


def make(**changes: object) -> TrainingPlan:
    return TrainingPlan(**{**BASE, **changes})


def _match(field: str, value: object) -> str:
    return re.escape(f"{field}={value!r} is invalid")


# (field, bad value): each must raise PlanError naming the field and the value.
INVALID = [
    # dataset_size: an integer in [1, MAX_DATASET_SIZE]
    ("dataset_size", NAN),
    ("dataset_size", INF),
    ("dataset_size", -INF),
    ("dataset_size", True),
    ("dataset_size", 60000.5),
    ("dataset_size", 0),
    ("dataset_size", -1),
    ("dataset_size", MAX_DATASET_SIZE + 1),
    ("dataset_size", "60000"),
    ("dataset_size", None),
    # batch_size: an integer in [1, dataset_size]
    ("batch_size", NAN),
    ("batch_size", INF),
    ("batch_size", -INF),
    ("batch_size", True),
    ("batch_size", False),
    ("batch_size", 2.5),
    ("batch_size", 0),
    ("batch_size", -1),
    ("batch_size", 60001),  # one past dataset_size: sample rate > 1
    ("batch_size", "256"),
    # noise_multiplier: finite, in (0, NOISE_MULTIPLIER_MAX]
    ("noise_multiplier", NAN),
    ("noise_multiplier", INF),
    ("noise_multiplier", -INF),
    ("noise_multiplier", True),
    ("noise_multiplier", 0),
    ("noise_multiplier", 0.0),
    ("noise_multiplier", -0.0),
    ("noise_multiplier", -1.0),
    ("noise_multiplier", float(np.nextafter(NOISE_MULTIPLIER_MAX, INF))),
    ("noise_multiplier", NOISE_MULTIPLIER_MAX + 1),
    ("noise_multiplier", "1.1"),
    ("noise_multiplier", None),
    # epochs: an integer in [1, MAX_EPOCHS]
    ("epochs", NAN),
    ("epochs", INF),
    ("epochs", True),
    ("epochs", 1.5),
    ("epochs", 0),
    ("epochs", -1),
    ("epochs", MAX_EPOCHS + 1),
    ("epochs", "10"),
    # delta: in the open interval (0, 1)
    ("delta", NAN),
    ("delta", INF),
    ("delta", -INF),
    ("delta", True),
    ("delta", False),
    ("delta", 0),
    ("delta", 0.0),
    ("delta", 1),
    ("delta", 1.0),
    ("delta", -1e-5),
    ("delta", 1.5),
    ("delta", "1e-5"),
    ("delta", None),
    # max_grad_norm: finite > 0
    ("max_grad_norm", NAN),
    ("max_grad_norm", INF),
    ("max_grad_norm", True),
    ("max_grad_norm", 0.0),
    ("max_grad_norm", -1.0),
    ("max_grad_norm", "1.0"),
]


@pytest.mark.parametrize(
    ("field", "value"), INVALID, ids=[f"{field}={value!r}" for field, value in INVALID]
)
def test_invalid_field_raises_plan_error_naming_field_and_value(field, value):
    with pytest.raises(PlanError, match=_match(field, value)) as info:
        make(**{field: value})
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, DpplanError)
    assert error.field == field
    assert error.value is value
    assert error.expected and f"must be {error.expected}" in str(error)


def test_batch_size_error_names_dataset_size_and_a_remedy():
    with pytest.raises(PlanError) as info:
        make(batch_size=70000)
    assert str(info.value) == (
        "batch_size=70000 is invalid: must be in [1, dataset_size=60000]. "
        "Lower batch_size or check dataset_size."
    )


def test_noise_multiplier_error_states_the_bound():
    with pytest.raises(PlanError, match=r"noise_multiplier=1001 is invalid: .*\[0.01, 1000\]"):
        make(noise_multiplier=1001)


@pytest.mark.parametrize("value", [1e-320, 5e-324, 0.0099])
def test_tiny_noise_multiplier_is_refused_before_any_accounting(value):
    # σ = 1e-320 reached the accountants and failed with "float division by zero".
    with pytest.raises(PlanError, match=r"\[0.01, 1000\]") as info:
        make(noise_multiplier=value)
    assert info.value.field == "noise_multiplier"


@pytest.mark.parametrize(
    "field", ["dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm"]
)
def test_huge_integer_is_a_plan_error_not_an_overflow(field):
    # A 400-digit integer overflowed float() deep inside validation (OverflowError).
    with pytest.raises(PlanError) as info:
        make(**{field: 10**400})
    assert info.value.field == field
    assert "(401 characters)" in str(info.value)
    assert len(str(info.value)) < 300


def test_total_steps_one_past_the_limit_is_refused_with_the_arithmetic():
    # 1 epoch of batch size 1 over MAX_TOTAL_STEPS + 1 records: one step too many.
    with pytest.raises(PlanError, match=r"epochs=1 is invalid") as info:
        TrainingPlan(
            dataset_size=MAX_TOTAL_STEPS + 1,
            batch_size=1,
            noise_multiplier=1.0,
            epochs=1,
            delta=1e-9,
        )
    message = str(info.value)
    assert "total_steps" in message
    assert f"{MAX_TOTAL_STEPS:,}" in message
    assert f"1 * {MAX_TOTAL_STEPS + 1} = {MAX_TOTAL_STEPS + 1:,}" in message
    assert "Raise batch_size or lower epochs" in message


def test_total_steps_over_limit_through_epochs():
    with pytest.raises(PlanError, match=r"epochs=5 is invalid: .*total_steps"):
        TrainingPlan(dataset_size=250_000, batch_size=1, noise_multiplier=1.0, epochs=5, delta=1e-7)


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 60000},  # sample rate 1: full batch is allowed
        {"batch_size": 1},
        {"noise_multiplier": NOISE_MULTIPLIER_MAX},
        {"noise_multiplier": NOISE_MULTIPLIER_MIN},
        {"dataset_size": 100, "batch_size": 100, "epochs": MAX_EPOCHS},
        {"dataset_size": MAX_DATASET_SIZE, "batch_size": MAX_DATASET_SIZE, "epochs": 1},
        {"dataset_size": MAX_TOTAL_STEPS, "batch_size": 1, "epochs": 1},  # exactly at the limit
        {"delta": 1e-300},
        {"delta": 0.999999},
        {"max_grad_norm": 1e-9},
        {"max_grad_norm": 1e9},
    ],
    ids=lambda changes: ",".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_values_at_the_bounds_are_accepted(changes):
    plan = make(**changes)
    for name, value in changes.items():
        assert getattr(plan, name) == value


def test_fields_are_keyword_only():
    with pytest.raises(TypeError):
        TrainingPlan(60000, 256, 1.1, 10, 1e-5)  # type: ignore[misc]


def test_missing_field_is_a_type_error():
    with pytest.raises(TypeError):
        TrainingPlan(dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=10)


# --- derived values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset_size", "batch_size", "epochs", "steps_per_epoch"),
    [
        (60000, 256, 10, 235),  # 234.375 rounds up
        (1000, 250, 3, 4),  # exact division
        (1000, 300, 3, 4),  # 3.33 rounds up
        (1000, 999, 2, 2),
        (1000, 1000, 7, 1),  # full batch
        (25, 1, 90, 25),
        (1, 1, 1, 1),
    ],
)
def test_derived_values(dataset_size, batch_size, epochs, steps_per_epoch):
    plan = TrainingPlan(
        dataset_size=dataset_size,
        batch_size=batch_size,
        noise_multiplier=1.0,
        epochs=epochs,
        delta=1e-6,
    )
    assert plan.sample_rate == batch_size / dataset_size
    assert plan.steps_per_epoch == steps_per_epoch == math.ceil(dataset_size / batch_size)
    assert plan.total_steps == epochs * steps_per_epoch
    assert [plan.steps_after(e) for e in range(epochs + 1)] == [
        e * steps_per_epoch for e in range(epochs + 1)
    ]
    assert type(plan.steps_per_epoch) is int and type(plan.total_steps) is int


def test_full_batch_has_sample_rate_one():
    assert make(batch_size=60000).sample_rate == 1.0


# --- normalisation, equality, hashing ------------------------------------------------


def test_integral_floats_are_normalised_to_int_and_hash_equal():
    floats = TrainingPlan(
        dataset_size=60000.0, batch_size=256.0, noise_multiplier=1.1, epochs=10.0, delta=1e-5
    )
    ints = make()
    assert floats == ints
    assert hash(floats) == hash(ints)
    assert type(floats.dataset_size) is int
    assert type(floats.batch_size) is int and floats.batch_size == 256
    assert type(floats.epochs) is int
    assert len({floats, ints}) == 1


def test_numbers_are_normalised_to_builtin_types():
    plan = TrainingPlan(
        dataset_size=np.int64(60000),
        batch_size=np.float64(256.0),
        noise_multiplier=np.float32(1.5),
        epochs=np.int32(3),
        delta=1e-5,
        max_grad_norm=2,
    )
    assert type(plan.dataset_size) is int and type(plan.batch_size) is int
    assert type(plan.epochs) is int
    assert type(plan.noise_multiplier) is float and plan.noise_multiplier == 1.5
    assert type(plan.max_grad_norm) is float and plan.max_grad_norm == 2.0
    json.dumps(plan.to_dict())  # JSON-ready: no numpy scalars left


def test_plans_differing_in_any_field_are_unequal():
    plan = make()
    for name, value in [
        ("dataset_size", 60001),
        ("batch_size", 257),
        ("noise_multiplier", 1.2),
        ("epochs", 11),
        ("delta", 2e-5),
        ("max_grad_norm", 2.0),
    ]:
        assert plan.replace(**{name: value}) != plan


# --- replace -------------------------------------------------------------------------


def test_replace_returns_a_new_validated_plan_and_leaves_the_original():
    plan = make()
    bigger = plan.replace(batch_size=512.0)
    assert bigger.batch_size == 512 and type(bigger.batch_size) is int
    assert bigger.steps_per_epoch == 118
    assert plan.batch_size == 256
    assert dataclasses.replace(bigger, batch_size=256) == plan
    assert plan.replace() == plan


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch_size": 0}, _match("batch_size", 0)),
        ({"batch_size": 70000}, _match("batch_size", 70000)),
        ({"dataset_size": 100}, _match("batch_size", 256)),  # cross-field rule, re-checked
        ({"noise_multiplier": NAN}, _match("noise_multiplier", NAN)),
        ({"delta": 1.0}, _match("delta", 1.0)),
        ({"epochs": MAX_EPOCHS + 1}, _match("epochs", MAX_EPOCHS + 1)),
    ],
)
def test_replace_revalidates(changes, match):
    with pytest.raises(PlanError, match=match):
        make().replace(**changes)


@pytest.mark.parametrize("name", ["sample_rate", "total_steps", "steps_per_epoch", "lr", "sigma"])
def test_replace_rejects_unknown_fields(name):
    with pytest.raises(PlanError, match=re.escape(f"{name}=0.5 is invalid")) as info:
        make().replace(**{name: 0.5})
    assert info.value.field == name
    assert "dataset_size" in info.value.hint  # lists the real fields


# --- frozen --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm"]
)
def test_plan_is_frozen(name):
    plan = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(plan, name, 1)
    assert plan == make()


def test_plan_has_no_instance_dict():
    plan = make()
    # CPython 3.11's frozen+slots dataclasses raise TypeError here instead of
    # FrozenInstanceError (the generated __setattr__ calls super() with the pre-slots
    # class). Either way the attribute is refused.
    with pytest.raises((AttributeError, TypeError)):
        plan.learning_rate = 0.1  # type: ignore[attr-defined]
    assert not hasattr(plan, "__dict__")


# --- to_dict / from_dict -------------------------------------------------------------


def test_to_dict_holds_fields_and_derived_values():
    data = make().to_dict()
    assert data == {
        "dataset_size": 60000,
        "batch_size": 256,
        "noise_multiplier": 1.1,
        "epochs": 10,
        "delta": 1e-5,
        "max_grad_norm": 1.0,
        "sample_rate": 256 / 60000,
        "steps_per_epoch": 235,
        "total_steps": 2350,
    }
    assert json.loads(json.dumps(data)) == data


@st.composite
def plans(draw) -> TrainingPlan:
    dataset_size = draw(st.integers(min_value=1, max_value=10**7))
    batch_size = draw(st.integers(min_value=1, max_value=dataset_size))
    steps_per_epoch = -(-dataset_size // batch_size)
    max_epochs = min(MAX_EPOCHS, MAX_TOTAL_STEPS // steps_per_epoch)
    if max_epochs < 1:  # too many steps for even one epoch: make the batch larger
        batch_size = max(batch_size, -(-dataset_size // MAX_TOTAL_STEPS))
        max_epochs = 1
    return TrainingPlan(
        dataset_size=dataset_size,
        batch_size=batch_size,
        noise_multiplier=draw(
            st.floats(min_value=NOISE_MULTIPLIER_MIN, max_value=NOISE_MULTIPLIER_MAX)
        ),
        epochs=draw(st.integers(min_value=1, max_value=max_epochs)),
        delta=draw(st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True)),
        max_grad_norm=draw(st.floats(min_value=1e-6, max_value=1e6)),
    )


@settings(max_examples=25, deadline=None)
@given(plans())
def test_from_dict_inverts_to_dict(plan):
    assert TrainingPlan.from_dict(plan.to_dict()) == plan
    through_json = TrainingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert through_json == plan and hash(through_json) == hash(plan)


def test_from_dict_accepts_fields_only_and_defaults_max_grad_norm():
    data = {
        k: v
        for k, v in make().to_dict().items()
        if k not in ("sample_rate", "steps_per_epoch", "total_steps", "max_grad_norm")
    }
    assert TrainingPlan.from_dict(data) == make()


def test_from_dict_accepts_integral_floats_from_json():
    data = {**make().to_dict(), "batch_size": 256.0, "total_steps": 2350.0}
    assert TrainingPlan.from_dict(data) == make()


def test_from_dict_rejects_unknown_keys():
    data = {**make().to_dict(), "learning_rate": 0.1}
    with pytest.raises(PlanError, match=_match("learning_rate", 0.1)) as info:
        TrainingPlan.from_dict(data)
    assert "noise_multiplier" in info.value.hint


@pytest.mark.parametrize(
    "name", ["dataset_size", "batch_size", "noise_multiplier", "epochs", "delta"]
)
def test_from_dict_rejects_missing_required_keys(name):
    data = make().to_dict()
    del data[name]
    with pytest.raises(PlanError, match=_match(name, None)):
        TrainingPlan.from_dict(data)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sample_rate", 0.5),
        ("steps_per_epoch", 234),
        ("total_steps", 2351),
        ("total_steps", "2350"),
        ("total_steps", True),
        ("total_steps", None),
    ],
)
def test_from_dict_rejects_inconsistent_derived_keys(name, value):
    data = {**make().to_dict(), name: value}
    with pytest.raises(PlanError, match=_match(name, value)) as info:
        TrainingPlan.from_dict(data)
    assert "derived" in str(info.value)


def test_from_dict_validates_field_values():
    data = {**make().to_dict(), "noise_multiplier": NAN}
    with pytest.raises(PlanError, match=_match("noise_multiplier", NAN)):
        TrainingPlan.from_dict(data)


@pytest.mark.parametrize("data", [None, [("dataset_size", 1)], "plan", 3])
def test_from_dict_rejects_non_mappings(data):
    with pytest.raises(PlanError, match=r"^plan="):
        TrainingPlan.from_dict(data)


# --- PlanError serialisation (used by the CLI's --json) ------------------------------


@pytest.mark.parametrize("value", [NAN, INF, -INF, object(), 0, "x", None])
def test_plan_error_to_dict_is_strict_json(value):
    error = PlanError("batch_size", value, "an integer >= 1", "Give a batch size.")
    data = error.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["field"] == "batch_size"
    assert data["type"] == "PlanError"
    assert data["message"] == str(error)
    assert data["message"].startswith(f"batch_size={value!r} is invalid: must be an integer >= 1.")
