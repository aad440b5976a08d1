"""Step engines: the fused engine performs exactly the mechanism Opacus performs.

Every test here runs on the CPU in about a second, on synthetic batches: equality with an
Opacus step, clipping, the noise's scale, the non-private limit, oversize batches and refusals.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from dpplan.errors import PlanError
from dpplan.plan import TrainingPlan
from dpplan.train.engines import (
    ENGINES,
    FusedEngine,
    Mechanism,
    OpacusEngine,
    batch_cap,
    make_engine,
)
from dpplan.train.models import make_model

PLAN = TrainingPlan(
    dataset_size=60000,
    batch_size=256,
    noise_multiplier=1.0,
    epochs=1,
    delta=1e-5,
    max_grad_norm=1.0,
)


def _batch(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return images, labels


def _pair(mechanism: Mechanism, *, momentum: float = 0.9, cap: int | None = None):
    """Two copies of one model (no dropout, so masks cannot differ), one per engine."""
    torch.manual_seed(0)
    first = make_model("tempered", activation="tanh")
    second = copy.deepcopy(first)
    opacus = OpacusEngine(
        first,
        torch.optim.SGD(first.parameters(), lr=0.5, momentum=momentum),
        mechanism,
        noise_generator=torch.Generator().manual_seed(7),
    )
    fused = FusedEngine(
        second,
        torch.optim.SGD(second.parameters(), lr=0.5, momentum=momentum),
        mechanism,
        noise_generator=torch.Generator().manual_seed(7),
        cap=cap,
    )
    return opacus, fused


def _close(first: nn.Module, second: nn.Module, rtol: float = 1e-5) -> None:
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-7)


def test_a_fused_step_equals_an_opacus_step():
    opacus, fused = _pair(Mechanism.from_plan(PLAN))
    for seed in range(3):  # momentum carries state across steps
        images, labels = _batch(300, seed)
        loss_o, loss_f = opacus.step(images, labels), fused.step(images, labels)
        assert loss_o == pytest.approx(loss_f, rel=1e-5)
    _close(opacus.model, fused.model)
    assert opacus.steps == fused.steps == 3
    assert fused.accountant.history == opacus.accountant.history


def test_a_batch_larger_than_the_cap_is_processed_whole():
    # Truncating or resampling an oversize Poisson batch would change the accounted mechanism.
    opacus, fused = _pair(Mechanism.from_plan(PLAN), cap=16)
    images, labels = _batch(100)
    opacus.step(images, labels)
    fused.step(images, labels)
    assert len(fused.last_norms) == 100
    _close(opacus.model, fused.model)


def test_an_empty_batch_is_still_a_noisy_step():
    opacus, fused = _pair(Mechanism.from_plan(PLAN))
    images, labels = _batch(0)
    assert math.isnan(fused.step(images, labels)) and math.isnan(opacus.step(images, labels))
    _close(opacus.model, fused.model)
    assert fused.steps == opacus.steps == 1


def test_every_clipped_example_contributes_at_most_the_clipping_norm():
    mechanism = Mechanism(
        noise_multiplier=0.0, max_grad_norm=0.01, expected_batch_size=1, sample_rate=0.01
    )
    torch.manual_seed(0)
    model = make_model("tempered", activation="tanh")
    before = [p.detach().clone() for p in model.parameters()]
    engine = FusedEngine(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        mechanism,
        noise_generator=torch.Generator().manual_seed(1),
    )
    images, labels = _batch(1)
    engine.step(images, labels)
    assert float(engine.last_norms[0]) > 0.01  # the raw gradient is larger than C
    step = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())])
    assert float(step.norm()) <= 0.01 * (1 + 1e-5)


def test_without_noise_and_clipping_the_update_is_sgd_on_the_sum_over_b():
    mechanism = Mechanism(
        noise_multiplier=0.0, max_grad_norm=1e9, expected_batch_size=64, sample_rate=0.01
    )
    torch.manual_seed(0)
    model = make_model("tempered", activation="relu")
    reference = copy.deepcopy(model)
    engine = FusedEngine(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        mechanism,
        noise_generator=torch.Generator().manual_seed(1),
    )
    images, labels = _batch(50)
    engine.step(images, labels)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(reference(images), labels, reduction="sum") / 64
    loss.backward()
    optimizer.step()
    _close(reference, model, rtol=1e-4)


def test_the_noise_has_standard_deviation_sigma_c_over_b():
    mechanism = Mechanism(
        noise_multiplier=1.3, max_grad_norm=2.0, expected_batch_size=50, sample_rate=0.01
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    engine = FusedEngine(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        mechanism,
        noise_generator=torch.Generator().manual_seed(3),
    )
    engine.step(*_batch(0))  # no examples: the update is the noise alone
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    change = before - after
    expected = 1.3 * 2.0 / 50
    # 7,850 draws: the sample std is within 5% of σC/B with overwhelming probability.
    assert float(change.std()) == pytest.approx(expected, rel=0.05)
    assert abs(float(change.mean())) < 4 * expected / math.sqrt(len(change))


def test_the_cap_covers_six_standard_deviations():
    assert batch_cap(256) >= 256 + 6 * 16 and batch_cap(256) % 8 == 0


@pytest.mark.parametrize("name", ENGINES)
def test_batchnorm_is_refused_with_a_clear_error(name):
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)
    )
    with pytest.raises(PlanError, match="BatchNorm mixes the examples") as info:
        make_engine(
            name,
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            PLAN,
            private=True,
            noise_generator=torch.Generator(),
        )
    assert info.value.field == "model"


def test_an_unknown_engine_is_refused():
    model = make_model("seed")
    with pytest.raises(PlanError, match="engine='jax' is invalid"):
        make_engine(
            "jax",
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            PLAN,
            private=True,
            noise_generator=torch.Generator(),
        )


def test_non_private_engine_takes_plain_steps_without_an_accountant():
    model = make_model("seed")
    engine = make_engine(
        "fused",
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        PLAN,
        private=False,
        noise_generator=torch.Generator(),
    )
    engine.step(*_batch(8))
    assert engine.name == "non_private" and engine.accountant is None and engine.steps == 1


def test_an_example_with_a_non_finite_gradient_contributes_nothing():
    # A NaN/inf gradient norm made Opacus' clip factor NaN, so one example could make the
    # whole update NaN (unbounded sensitivity); it now contributes zero.
    mechanism = Mechanism(
        noise_multiplier=0.0, max_grad_norm=1.0, expected_batch_size=2, sample_rate=0.01
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    engine = FusedEngine(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        mechanism,
        noise_generator=torch.Generator().manual_seed(3),
    )
    images, labels = _batch(2)
    images[1, 0, 0, 0] = float("inf")
    engine.step(images, labels)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("private", [True, False])
@pytest.mark.parametrize("name", ENGINES)
def test_engines_follow_the_protocol_and_restore_their_own_state(name, private):
    # Issue 21: the trainer reads and restores an engine only through the StepEngine protocol.
    from dpplan.train.engines import StepEngine

    def build():
        torch.manual_seed(0)
        model = make_model("tempered", activation="tanh")
        return make_engine(
            name,
            model,
            torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            PLAN,
            private=private,
            noise_generator=torch.Generator().manual_seed(1),
        )

    engine = build()
    assert isinstance(engine, StepEngine)
    for seed in range(2):
        engine.step(*_batch(20, seed))
    half = Mechanism.from_plan(PLAN.replace(batch_size=512, noise_multiplier=2.0))
    engine.set_mechanism(half)
    engine.step(*_batch(20, 5))
    state = engine.state_dict()
    assert state["steps"] == engine.steps == 3
    if private:  # a phase boundary: the accountant saw the new (σ, q)
        assert state["accountant_history"] == [
            [1.0, PLAN.sample_rate, 2],
            [2.0, 512 / 60000, 1],
        ]
    else:
        assert state["accountant_history"] is None
    fresh = build()
    fresh.load_state_dict(state)
    assert (
        fresh.steps == 3
        and fresh.state_dict()["accountant_history"] == (state["accountant_history"])
    )
    assert fresh.optimizer.state_dict()["state"].keys() == state["optimizer"]["state"].keys()


def test_after_a_phase_boundary_the_engines_still_perform_the_same_step():
    # New σ, C and B at the boundary: the fused engine rebuilds its clipping function, Opacus'
    # optimizer gets the new values; both still give the same update and account the same.
    opacus, fused = _pair(Mechanism.from_plan(PLAN))
    images, labels = _batch(300, 0)
    opacus.step(images, labels), fused.step(images, labels)
    second = Mechanism.from_plan(
        PLAN.replace(batch_size=128, noise_multiplier=3.0, max_grad_norm=0.25)
    )
    for engine in (opacus, fused):
        engine.set_mechanism(second)
    images, labels = _batch(150, 1)
    opacus.step(images, labels), fused.step(images, labels)
    _close(opacus.model, fused.model)
    assert (
        fused.accountant.history
        == opacus.accountant.history
        == [
            (1.0, PLAN.sample_rate, 1),
            (3.0, 128 / 60000, 1),
        ]
    )
    assert float(fused.last_norms.max()) > 0.25  # clipping to the new C bound
