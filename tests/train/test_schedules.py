"""Tests for dpplan.train.schedules: specs, validation, and the LR controller."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from dpplan.errors import PlanError
from dpplan.train.models import make_model
from dpplan.train.schedules import (
    SCHEDULES,
    Constant,
    LrController,
    OneCycle,
    Plateau,
    ScheduleSpec,
    make_optimizer,
    make_scheduler,
    schedule_from_dict,
)

NAN = float("nan")
INF = float("inf")


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 1).parameters())


def _setup(spec: ScheduleSpec, total_steps: int) -> tuple[LrController, torch.optim.SGD]:
    optimizer = make_optimizer(spec, _params())
    return make_scheduler(spec, optimizer, total_steps=total_steps), optimizer


def _run(
    controller: LrController, optimizer: torch.optim.SGD, steps: int
) -> tuple[list[float], list[float]]:
    """Return the learning rate and momentum each of ``steps`` optimizer steps used."""
    lrs, momenta = [], []
    for _ in range(steps):
        lrs.append(controller.current_lr())
        momenta.append(controller.current_momentum())
        optimizer.step()  # no gradients, so a no-op; keeps torch's step-order check quiet
        controller.after_step()
    return lrs, momenta


# --- specs -----------------------------------------------------------------------------


def test_kinds() -> None:
    assert SCHEDULES == ("one_cycle", "plateau", "constant")
    assert (OneCycle.kind, Plateau.kind, Constant.kind) == SCHEDULES
    for cls in (OneCycle, Plateau, Constant):
        assert "kind" not in {field.name for field in dataclasses.fields(cls)}


def test_specs_are_frozen_and_slotted() -> None:
    spec = OneCycle(max_lr=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_lr = 2.0  # type: ignore[misc]
    assert not hasattr(spec, "__dict__")
    with pytest.raises(TypeError):
        OneCycle(1.0)  # type: ignore[misc]  # keyword-only


def test_initial_lr() -> None:
    assert OneCycle(max_lr=15.62).initial_lr == pytest.approx(15.62 / 25)
    assert OneCycle(max_lr=2.0, div_factor=4.0).initial_lr == 0.5
    assert Plateau(lr=0.05).initial_lr == 0.05
    assert Constant(lr=0.3).initial_lr == 0.3


def test_numbers_are_normalised() -> None:
    spec = OneCycle(max_lr=2, div_factor=10, momentum=0)
    assert spec == OneCycle(max_lr=2.0, div_factor=10.0, momentum=0.0)
    assert type(spec.max_lr) is float and type(spec.div_factor) is float
    plateau = Plateau(lr=1, patience=3.0)
    assert type(plateau.lr) is float
    assert plateau.patience == 3 and type(plateau.patience) is int


def test_boundary_values_are_valid() -> None:
    OneCycle(max_lr=100.0, momentum=0.0, div_factor=1.0, final_div_factor=1.0)
    OneCycle(max_lr=1.0, base_momentum=0.9, max_momentum=0.9)
    Plateau(lr=100.0, patience=0, min_lr=0.0)
    Plateau(lr=0.1, min_lr=0.1)
    Constant(lr=1e-12, momentum=0.0)


# Every validation branch: (class, valid base kwargs, field, bad value).
_ONE = {"max_lr": 1.0}
_LR = {"lr": 0.1}
_COMMON_BAD = [NAN, INF, -INF, True, False, "1", None]
_BAD_CASES: list[tuple[type, dict[str, object], str, object]] = [
    *[(OneCycle, _ONE, "max_lr", v) for v in [*_COMMON_BAD, 0, 0.0, -1.0, 100.5, 1e300]],
    *[(OneCycle, _ONE, "momentum", v) for v in [*_COMMON_BAD, -0.1, 1, 1.0, 2.0]],
    *[(OneCycle, _ONE, "pct_start", v) for v in [*_COMMON_BAD, 0, 0.0, 1, 1.0, -0.5, 1.5]],
    *[(OneCycle, _ONE, "div_factor", v) for v in [*_COMMON_BAD, 0, -1.0, 0.5]],
    *[(OneCycle, _ONE, "final_div_factor", v) for v in [*_COMMON_BAD, 0, -1.0, 0.999]],
    *[(OneCycle, _ONE, "cycle_momentum", v) for v in [1, 0, "yes", None, NAN]],
    *[(OneCycle, _ONE, "base_momentum", v) for v in [*_COMMON_BAD, -0.1, 1.0, 0.96]],
    *[(OneCycle, _ONE, "max_momentum", v) for v in [*_COMMON_BAD, -0.1, 1.0]],
    *[(Plateau, _LR, "lr", v) for v in [*_COMMON_BAD, 0, -0.1, 101.0]],
    *[(Plateau, _LR, "momentum", v) for v in [*_COMMON_BAD, -0.01, 1.0]],
    *[(Plateau, _LR, "factor", v) for v in [*_COMMON_BAD, 0, 1, 1.0, -0.5, 2.0]],
    *[(Plateau, _LR, "patience", v) for v in [*_COMMON_BAD, -1, 1.5, "2"]],
    *[(Plateau, _LR, "min_lr", v) for v in [*_COMMON_BAD, -1e-9, 0.2]],
    *[(Constant, _LR, "lr", v) for v in [*_COMMON_BAD, 0, -1.0, 1000.0]],
    *[(Constant, _LR, "momentum", v) for v in [*_COMMON_BAD, -0.5, 1.0]],
]


@pytest.mark.parametrize(
    ("cls", "base", "field", "value"),
    _BAD_CASES,
    ids=[f"{c.__name__}-{f}={v!r}" for c, _, f, v in _BAD_CASES],
)
def test_invalid_field_is_a_plan_error(
    cls: type, base: dict[str, object], field: str, value: object
) -> None:
    with pytest.raises(PlanError, match=rf"^{field}=") as info:
        cls(**{**base, field: value})
    assert info.value.field == field
    assert "is invalid: must be" in str(info.value)


def test_nan_message_matches_template() -> None:
    with pytest.raises(PlanError) as info:
        OneCycle(max_lr=NAN)
    assert str(info.value).startswith("max_lr=nan is invalid: must be a finite number in (0, 100]")


def test_max_momentum_below_base_momentum_names_both() -> None:
    with pytest.raises(PlanError, match=r"^base_momentum=0.85 .*max_momentum=0.8") as info:
        OneCycle(max_lr=1.0, max_momentum=0.8)
    assert info.value.field == "base_momentum"


def test_min_lr_above_lr_has_a_hint() -> None:
    with pytest.raises(PlanError, match=r"^min_lr=0.5 is invalid: must be .*0.1\]") as info:
        Plateau(lr=0.1, min_lr=0.5)
    assert info.value.hint


# --- to_dict / schedule_from_dict ----------------------------------------------------------

EXAMPLES = [
    OneCycle(max_lr=15.62),
    OneCycle(max_lr=0.5, cycle_momentum=False, momentum=0.0, pct_start=0.3),
    Plateau(lr=0.05, factor=0.1, patience=0),
    Plateau(lr=0.05, patience=3, evaluate_every=10),
    Constant(lr=0.1, momentum=0.9),
]


@pytest.mark.parametrize("spec", EXAMPLES, ids=repr)
def test_to_dict_round_trip(spec: ScheduleSpec) -> None:
    data = spec.to_dict()
    assert next(iter(data)) == "kind"
    assert data["kind"] == spec.kind
    # Every field, except a plateau's evaluate_every when None (runs stored before it
    # existed read back the same).
    fields = {f.name for f in dataclasses.fields(spec)}
    if getattr(spec, "evaluate_every", 0) is None:
        fields.remove("evaluate_every")
    assert set(data) == {"kind"} | fields
    assert schedule_from_dict(data) == spec
    assert schedule_from_dict(json.loads(json.dumps(data))) == spec


def test_from_dict_fills_defaults() -> None:
    assert schedule_from_dict({"kind": "one_cycle", "max_lr": 3}) == OneCycle(max_lr=3.0)
    assert schedule_from_dict({"kind": "constant", "lr": 0.2}) == Constant(lr=0.2)


_momenta = st.floats(0.0, 0.999)


@st.composite
def _specs(draw: st.DrawFn) -> ScheduleSpec:
    kind = draw(st.sampled_from(SCHEDULES))
    lr = draw(st.floats(1e-6, 100.0))
    if kind == "one_cycle":
        base_momentum, max_momentum = sorted([draw(_momenta), draw(_momenta)])
        return OneCycle(
            max_lr=lr,
            momentum=draw(_momenta),
            pct_start=draw(st.floats(0.01, 0.99)),
            div_factor=draw(st.floats(1.0, 1e3)),
            final_div_factor=draw(st.floats(1.0, 1e5)),
            cycle_momentum=draw(st.booleans()),
            base_momentum=base_momentum,
            max_momentum=max_momentum,
        )
    if kind == "plateau":
        return Plateau(
            lr=lr,
            momentum=draw(_momenta),
            factor=draw(st.floats(0.01, 0.99)),
            patience=draw(st.integers(0, 20)),
            min_lr=draw(st.floats(0.0, lr)),
        )
    return Constant(lr=lr, momentum=draw(_momenta))


@settings(max_examples=50, deadline=None)
@given(_specs())
def test_round_trip_property(spec: ScheduleSpec) -> None:
    assert schedule_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([("kind", "constant")], "schedule"),
        ("constant", "schedule"),
        (None, "schedule"),
        ({"lr": 0.1}, "kind"),
        ({"kind": "cosine", "lr": 0.1}, "kind"),
        ({"kind": None}, "kind"),
        ({"kind": "constant", "lr": 0.1, "lr_max": 1.0}, "lr_max"),
        ({"kind": "constant", "lr": 0.1, "patience": 2}, "patience"),
        ({"kind": "one_cycle", "lr": 0.1}, "lr"),
        ({"kind": "one_cycle"}, "max_lr"),
        ({"kind": "plateau", "momentum": 0.5}, "lr"),
        ({"kind": "plateau", "lr": NAN}, "lr"),
        ({"kind": "plateau", "lr": 0.1, "patience": -1}, "patience"),
    ],
)
def test_schedule_from_dict_errors_name_the_field(data: object, field: str) -> None:
    with pytest.raises(PlanError, match=rf"^{field}=") as info:
        schedule_from_dict(data)  # type: ignore[arg-type]
    assert info.value.field == field


# --- make_optimizer ------------------------------------------------------------------------


def test_make_optimizer_uses_spec_lr_and_momentum() -> None:
    cases = [
        (OneCycle(max_lr=2.0), 0.08, 0.95),
        (OneCycle(max_lr=2.0, cycle_momentum=False, momentum=0.5), 0.08, 0.5),
        (Plateau(lr=0.05, momentum=0.9), 0.05, 0.9),
        (Constant(lr=0.1), 0.1, 0.0),
    ]
    for spec, lr, momentum in cases:
        optimizer = make_optimizer(spec, _params())
        assert type(optimizer) is torch.optim.SGD
        assert optimizer.param_groups[0]["lr"] == pytest.approx(lr)
        assert optimizer.param_groups[0]["momentum"] == momentum


def test_make_optimizer_rejects_a_non_spec() -> None:
    with pytest.raises(PlanError, match=r"^schedule=") as info:
        make_optimizer({"kind": "constant", "lr": 0.1}, _params())  # type: ignore[arg-type]
    assert info.value.field == "schedule"


# --- make_scheduler: one-cycle ---------------------------------------------------------


def test_one_cycle_lr_rises_to_max_then_anneals_to_final() -> None:
    spec = OneCycle(max_lr=2.0, pct_start=0.25, div_factor=25.0, final_div_factor=1e4)
    total = 100
    controller, optimizer = _setup(spec, total)
    lrs, _ = _run(controller, optimizer, total)
    peak = int(spec.pct_start * total) - 1  # torch's OneCycleLR peaks at this step index
    assert lrs[0] == pytest.approx(2.0 / 25)
    assert lrs[peak] == pytest.approx(2.0, rel=1e-12)
    assert max(lrs) == lrs[peak]
    assert all(a < b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[peak:]))
    final = 2.0 / (25.0 * 1e4)
    assert lrs[-1] == pytest.approx(final, rel=1e-9)
    # After the last step the learning rate stays at its final value.
    assert controller.current_lr() == pytest.approx(final, rel=1e-9)
    assert controller.steps_taken == total


def test_one_cycle_momentum_cycles_inversely() -> None:
    spec = OneCycle(max_lr=1.0, base_momentum=0.8, max_momentum=0.95)
    total = 40
    lrs, momenta = _run(*_setup(spec, total), total)
    peak = int(spec.pct_start * total) - 1
    assert momenta[0] == pytest.approx(0.95)
    assert momenta[peak] == pytest.approx(0.8)
    assert momenta[-1] == pytest.approx(0.95)
    assert min(momenta) == momenta[peak]
    for i in range(total - 1):
        d_lr, d_momentum = lrs[i + 1] - lrs[i], momenta[i + 1] - momenta[i]
        assert d_lr * d_momentum < 0, f"step {i}: lr and momentum moved the same way"


def test_one_cycle_without_momentum_cycling_keeps_momentum() -> None:
    spec = OneCycle(max_lr=1.0, cycle_momentum=False, momentum=0.7)
    lrs, momenta = _run(*_setup(spec, 20), 20)
    assert set(momenta) == {0.7}
    assert max(lrs) == pytest.approx(1.0)


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 8])
def test_one_cycle_works_for_tiny_runs(total_steps: int) -> None:
    # total_steps=4 with pct_start=0.25 makes torch's OneCycleLR divide by zero unless
    # dpplan handles it; the answer is a one-step rise, so step 0 is at max_lr.
    spec = OneCycle(max_lr=1.0, pct_start=0.25)
    controller, optimizer = _setup(spec, total_steps)
    lrs, _ = _run(controller, optimizer, total_steps)
    assert all(math.isfinite(lr) for lr in lrs)
    assert max(lrs) <= 1.0 + 1e-9
    if total_steps == 4:
        assert lrs[0] == pytest.approx(1.0, rel=1e-6)
    if total_steps > 1:
        assert lrs[-1] == pytest.approx(1.0 / (25.0 * 1e4), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    total_steps=st.integers(1, 60),
    pct_start=st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9]),
)
def test_one_cycle_lr_stays_in_range(total_steps: int, pct_start: float) -> None:
    spec = OneCycle(max_lr=3.0, pct_start=pct_start)
    controller, optimizer = _setup(spec, total_steps)
    lrs, momenta = _run(controller, optimizer, total_steps)
    final = 3.0 / (25.0 * 1e4)
    assert all(final * (1 - 1e-9) <= lr <= 3.0 * (1 + 1e-9) for lr in lrs)
    assert all(0.85 - 1e-9 <= m <= 0.95 + 1e-9 for m in momenta)
    with pytest.raises(PlanError, match=r"^total_steps="):
        controller.after_step()


def test_one_cycle_overrun_is_a_plan_error() -> None:
    controller, optimizer = _setup(OneCycle(max_lr=1.0), 5)
    _run(controller, optimizer, 5)
    with pytest.raises(PlanError, match=r"^total_steps=5 .*\(6\)") as info:
        controller.after_step()
    assert info.value.field == "total_steps"


def test_one_cycle_ignores_after_epoch() -> None:
    controller, _ = _setup(OneCycle(max_lr=1.0), 10)
    before = controller.current_lr()
    for loss in [1.0, 2.0, 3.0, 4.0]:
        controller.after_epoch(loss)
    assert controller.current_lr() == before


# --- make_scheduler: plateau and constant --------------------------------------------------


def test_plateau_reduces_after_patience_plus_one_bad_epochs() -> None:
    spec = Plateau(lr=0.1, factor=0.5, patience=2)
    controller, _ = _setup(spec, 100)
    controller.after_epoch(1.0)  # first epoch sets the best loss
    for _ in range(spec.patience):
        controller.after_epoch(1.0)
        assert controller.current_lr() == pytest.approx(0.1)
    controller.after_epoch(1.0)  # the (patience + 1)-th non-improving epoch
    assert controller.current_lr() == pytest.approx(0.05)


def test_plateau_improvement_resets_patience_and_steps_are_ignored() -> None:
    controller, optimizer = _setup(Plateau(lr=0.1, factor=0.5, patience=1), 100)
    _run(controller, optimizer, 10)
    assert controller.current_lr() == pytest.approx(0.1)
    for loss in [1.0, 1.0, 0.5, 0.5, 0.4]:  # each bad epoch is followed by an improvement
        controller.after_epoch(loss)
    assert controller.current_lr() == pytest.approx(0.1)
    controller.after_epoch(0.4)
    controller.after_epoch(0.4)
    assert controller.current_lr() == pytest.approx(0.05)


def test_plateau_respects_min_lr() -> None:
    controller, _ = _setup(Plateau(lr=0.1, factor=0.1, patience=0, min_lr=0.002), 10)
    for _ in range(10):
        controller.after_epoch(1.0)
    assert controller.current_lr() == pytest.approx(0.002)


def test_plateau_counts_nan_loss_as_not_improving() -> None:
    controller, _ = _setup(Plateau(lr=0.1, factor=0.5, patience=0), 10)
    controller.after_epoch(1.0)
    controller.after_epoch(NAN)
    assert controller.current_lr() == pytest.approx(0.05)


@pytest.mark.parametrize("loss", ["1.0", None, True, torch.tensor([1.0, 2.0])])
def test_after_epoch_rejects_non_numbers(loss: object) -> None:
    controller, _ = _setup(Plateau(lr=0.1), 10)
    with pytest.raises(PlanError, match=r"^validation_loss=") as info:
        controller.after_epoch(loss)  # type: ignore[arg-type]
    assert info.value.field == "validation_loss"


def test_constant_stays_constant() -> None:
    controller, optimizer = _setup(Constant(lr=0.3, momentum=0.9), 5)
    lrs, momenta = _run(controller, optimizer, 20)  # no total_steps check for constant
    for loss in [3.0, 3.0, 3.0, 3.0]:
        controller.after_epoch(loss)
    assert set(lrs) == {0.3} and set(momenta) == {0.9}
    assert controller.current_lr() == 0.3


def test_make_scheduler_resets_lr_and_momentum_to_the_spec() -> None:
    optimizer = torch.optim.SGD(_params(), lr=7.0, momentum=0.1)
    controller = make_scheduler(Plateau(lr=0.05, momentum=0.6), optimizer, total_steps=3)
    assert controller.current_lr() == 0.05
    assert controller.current_momentum() == 0.6


@pytest.mark.parametrize("total_steps", [0, -1, 1.5, True, NAN, INF, "10", None])
def test_make_scheduler_rejects_bad_total_steps(total_steps: object) -> None:
    spec = OneCycle(max_lr=1.0)
    with pytest.raises(PlanError, match=r"^total_steps=") as info:
        make_scheduler(spec, make_optimizer(spec, _params()), total_steps=total_steps)  # type: ignore[arg-type]
    assert info.value.field == "total_steps"


def test_make_scheduler_rejects_bad_spec_and_optimizer() -> None:
    optimizer = make_optimizer(Constant(lr=0.1), _params())
    with pytest.raises(PlanError, match=r"^schedule=") as info:
        make_scheduler("one_cycle", optimizer, total_steps=3)  # type: ignore[arg-type]
    assert info.value.field == "schedule"
    for bad in [torch.optim.Adam(_params()), object()]:
        with pytest.raises(PlanError, match=r"^optimizer=") as info:
            make_scheduler(Constant(lr=0.1), bad, total_steps=3)  # type: ignore[arg-type]
        assert info.value.field == "optimizer"


# --- with Opacus' DPOptimizer ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize(
    "spec",
    [OneCycle(max_lr=2.0), Plateau(lr=0.1, factor=0.5, patience=0), Constant(lr=0.1, momentum=0.5)],
    ids=lambda spec: spec.kind,
)
def test_controller_drives_a_dp_optimizer(spec: ScheduleSpec) -> None:
    torch.manual_seed(0)
    model = GradSampleModule(make_model("tempered", activation="tanh"))
    optimizer = DPOptimizer(
        make_optimizer(spec, model.parameters()),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        expected_batch_size=8,
    )
    assert isinstance(optimizer, torch.optim.Optimizer)
    steps = 6
    controller = make_scheduler(spec, optimizer, total_steps=steps)
    wrapped = optimizer.original_optimizer
    assert controller.current_lr() == pytest.approx(spec.initial_lr)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    lrs = []
    for _ in range(steps):
        lrs.append(controller.current_lr())
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        controller.after_step()
        # The schedule writes through DPOptimizer's proxied param_groups.
        assert wrapped.param_groups[0]["lr"] == controller.current_lr()
        assert wrapped.param_groups[0]["momentum"] == controller.current_momentum()
    controller.after_epoch(1.0)
    controller.after_epoch(1.0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    if isinstance(spec, OneCycle):
        assert len(set(lrs)) == steps
        assert controller.current_lr() == pytest.approx(2.0 / 25e4)
    elif isinstance(spec, Plateau):
        assert set(lrs) == {0.1}
        assert controller.current_lr() == pytest.approx(0.05)
    else:
        assert set(lrs) == {0.1}
        assert controller.current_lr() == 0.1


def test_plateau_defaults_are_the_ones_used_everywhere() -> None:
    # The CLI, app, comparison and report all use Plateau's own defaults (×0.1 after two
    # non-improving epochs); they used to spell out factor=0.1, patience=1 against 0.5 and 2.
    spec = Plateau(lr=0.05)
    assert (spec.factor, spec.patience) == (0.1, 1)


def test_a_non_private_run_cannot_have_a_target_epsilon() -> None:
    # It stopped "before epoch 1" (ε = ∞ > target) and reported finished, having trained nothing.
    from dpplan.train.specs import RunOptions

    with pytest.raises(PlanError, match="target_epsilon=5 is invalid: must be None"):
        RunOptions(private=False, target_epsilon=5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, 1025, "2", float("nan")])
def test_threads_must_be_a_whole_number_of_threads(bad) -> None:
    from dpplan.train.specs import RunOptions

    with pytest.raises(
        PlanError, match=r"threads=.* is invalid: must be an integer in \[1, 1024\]"
    ):
        RunOptions(threads=bad)


def test_threads_default_and_old_runs_without_threads() -> None:
    from dpplan.train.specs import DEFAULT_THREADS, RunOptions

    assert RunOptions().threads == DEFAULT_THREADS == 1
    assert RunOptions(threads=2.0).threads == 2 and type(RunOptions(threads=2.0).threads) is int
    stored = RunOptions().to_dict()
    del stored["threads"]  # a run stored before threads were an option
    assert RunOptions.from_dict(stored).threads == DEFAULT_THREADS
