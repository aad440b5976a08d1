"""Tests for dpplan.train.models: shapes, sizes, Opacus compatibility, name errors."""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from opacus.validators import ModuleValidator
from torch import nn

from dpplan.errors import PlanError
from dpplan.train.models import ACTIVATIONS, MODELS, SeedNet, TemperedCNN, make_model

VALID = [("seed", "relu"), ("tempered", "tanh"), ("tempered", "relu")]
VALID_IDS = [f"{name}-{activation}" for name, activation in VALID]

# Hooks on the first layer fire without input gradients; harmless for these tests.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_names_are_the_published_ones() -> None:
    assert MODELS == ("seed", "tempered")
    assert ACTIVATIONS == ("tanh", "relu")


@pytest.mark.parametrize(("name", "activation"), VALID, ids=VALID_IDS)
@pytest.mark.parametrize("batch", [1, 5])
def test_forward_returns_logits_of_shape_n_by_10(name: str, activation: str, batch: int) -> None:
    torch.manual_seed(0)
    model = make_model(name, activation=activation).eval()
    out = model(torch.randn(batch, 1, 28, 28))
    assert out.shape == (batch, 10)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # Logits, not log-probabilities: rows are not normalised.
    assert not torch.allclose(out.exp().sum(dim=1), torch.ones(batch))


def test_make_model_returns_the_right_classes() -> None:
    assert type(make_model("seed")) is SeedNet
    tempered = make_model("tempered")
    assert type(tempered) is TemperedCNN
    assert isinstance(tempered.act, nn.ReLU)  # make_model's default activation is relu
    assert isinstance(make_model("tempered", activation="tanh").act, nn.Tanh)
    assert isinstance(TemperedCNN().act, nn.Tanh)  # the class defaults to the paper's tanh


def test_seed_net_has_21840_parameters() -> None:
    # conv1 10*1*25+10, conv2 20*10*25+20, fc1 320*50+50, fc2 50*10+10.
    assert _count(SeedNet()) == 260 + 5020 + 16050 + 510 == 21840


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tempered_cnn_has_26010_parameters(activation: str) -> None:
    # Papernot et al., Sec. 3: "over 26,000 parameters". conv1 16*64+16, conv2 32*16*16+32,
    # fc1 512*32+32, fc2 32*10+10.
    assert _count(TemperedCNN(activation)) == 1040 + 8224 + 16416 + 330 == 26010


def test_tempered_cnn_intermediate_shapes() -> None:
    model = TemperedCNN("relu")
    x = model.pool(model.act(model.conv1(torch.zeros(1, 1, 28, 28))))
    assert x.shape == (1, 16, 13, 13)
    x = model.pool(model.act(model.conv2(x)))
    assert x.shape == (1, 32, 4, 4)


def test_seed_net_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    model = SeedNet()
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize(("name", "activation"), VALID, ids=VALID_IDS)
def test_opacus_validator_accepts_model(name: str, activation: str) -> None:
    model = make_model(name, activation=activation)
    assert ModuleValidator.validate(model, strict=True) == []
    assert ModuleValidator.is_valid(model)


@pytest.mark.parametrize(("name", "activation"), VALID, ids=VALID_IDS)
def test_per_sample_gradients_sum_to_the_batch_gradient(name: str, activation: str) -> None:
    torch.manual_seed(0)
    model = GradSampleModule(make_model(name, activation=activation), loss_reduction="sum")
    batch = 3
    x = torch.randn(batch, 1, 28, 28)
    y = torch.tensor([0, 3, 7])
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params
    for p in params:
        assert p.grad_sample is not None
        assert p.grad_sample.shape == (batch, *p.shape)
        torch.testing.assert_close(p.grad_sample.sum(dim=0), p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet", "Seed", "", "seed ", None, 1])
def test_unknown_model_name_is_a_plan_error(name: object) -> None:
    with pytest.raises(PlanError, match=r"^model=.*'seed', 'tempered'") as info:
        make_model(name)  # type: ignore[arg-type]
    assert info.value.field == "model"
    assert info.value.value == name


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("activation", ["sigmoid", "TANH", "", None])
def test_unknown_activation_is_a_plan_error(name: str, activation: object) -> None:
    with pytest.raises(PlanError, match=r"^activation=.*'tanh', 'relu'") as info:
        make_model(name, activation=activation)  # type: ignore[arg-type]
    assert info.value.field == "activation"


def test_tempered_cnn_rejects_unknown_activation() -> None:
    with pytest.raises(PlanError, match=r"^activation='gelu'") as info:
        TemperedCNN(activation="gelu")
    assert info.value.field == "activation"


def test_seed_net_rejects_tanh_with_a_hint() -> None:
    with pytest.raises(PlanError, match=r"^activation='tanh' is invalid: must be 'relu'") as info:
        make_model("seed", activation="tanh")
    assert info.value.field == "activation"
    assert "model='tempered'" in info.value.hint
