"""The two MNIST networks of the published experiments dpplan reproduces.

* :class:`SeedNet` is the five-layer CNN of the super-convergence study (two convolutions,
  one ``Dropout2d``, two fully connected layers; the PyTorch MNIST example it started from).
  21,840 parameters.
* :class:`TemperedCNN` is the Table 1 architecture of Papernot et al., "Making the shoe fit"
  (k = 16 and 32 filters), whose hidden activation is either ``tanh`` (the tempered sigmoid
  the paper recommends for DP-SGD) or ``relu``. 26,010 parameters.

Both take ``(N, 1, 28, 28)`` images and return ``(N, 10)`` logits (no softmax: the trainer
uses ``torch.nn.functional.cross_entropy``). Both contain only layers that Opacus computes
per-sample gradients for, so ``opacus.validators.ModuleValidator.validate(model,
strict=True)`` reports no errors for either.
"""

from __future__ import annotations

import torch
from torch import nn

from dpplan import _validate
from dpplan.errors import PlanError
from dpplan.train.specs import ACTIVATIONS, MODELS

__all__ = ["ACTIVATIONS", "MODELS", "SeedNet", "TemperedCNN", "make_model"]


_ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class _MnistCNN(nn.Module):
    """Both networks' shape: convolutions, flattened, a hidden fully connected layer and the
    logits layer ``fc2``; a subclass says what its convolutions and hidden layer do."""

    fc2: nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits for a batch of images.

        Args:
            x: images of shape ``(N, 1, 28, 28)``.

        Returns:
            Logits of shape ``(N, 10)``.
        """
        return self.fc2(self.hidden(self.convolve(x).flatten(start_dim=1)))

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SeedNet(_MnistCNN):
    """The seed CNN of the super-convergence study, returning logits.

    Layers: conv 1→10 (5x5), max-pool 2, ReLU; conv 10→20 (5x5), ``Dropout2d(0.5)``,
    max-pool 2, ReLU; flatten to 320; fully connected 320→50, ReLU, ``Dropout(0.5)``;
    fully connected 50→10. Dropout is active only in training mode.

    Example:
        >>> model = SeedNet()
        >>> model.eval()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(p=0.5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(320, 50)
        self.fc1_drop = nn.Dropout(p=0.5)
        self.fc2 = nn.Linear(50, 10)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.pool(self.conv1(x)))  # (N, 10, 12, 12)
        return self.relu(self.pool(self.conv2_drop(self.conv2(x))))  # (N, 20, 4, 4): 320

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1_drop(self.relu(self.fc1(x)))


class TemperedCNN(_MnistCNN):
    """The Table 1 CNN of Papernot et al. with a ``tanh`` or ``relu`` hidden activation.

    Layers: conv 1→16 (8x8, stride 2, padding 3), activation, max-pool 2 (stride 1);
    conv 16→32 (4x4, stride 2), activation, max-pool 2 (stride 1); flatten to 512;
    fully connected 512→32, activation; fully connected 32→10.

    Args:
        activation: ``"tanh"`` (the tempered sigmoid the paper recommends for DP-SGD) or
            ``"relu"`` (its baseline).

    Raises:
        PlanError: if ``activation`` is not one of :data:`ACTIVATIONS` (field
            ``activation``).

    Example:
        >>> model = TemperedCNN(activation="relu")
        >>> model(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """

    def __init__(self, activation: str = "tanh") -> None:
        super().__init__()
        activation = _validate.choice(options=ACTIVATIONS, activation=activation)
        self.activation_name = activation
        self.conv1 = nn.Conv2d(1, 16, kernel_size=8, stride=2, padding=3)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=4, stride=2)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1)
        self.act = _ACTIVATION_LAYERS[activation]()
        self.fc1 = nn.Linear(32 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))  # (N, 16, 13, 13)
        return self.pool(self.act(self.conv2(x)))  # (N, 32, 4, 4): 512

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc1(x))


def make_model(name: str, *, activation: str = "relu") -> nn.Module:
    """Build a freshly initialised model by name.

    Args:
        name: ``"seed"`` for :class:`SeedNet` or ``"tempered"`` for :class:`TemperedCNN`.
        activation: the hidden activation, one of :data:`ACTIVATIONS`. ``"seed"`` accepts
            only ``"relu"``.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        PlanError: if ``name`` is not one of :data:`MODELS` (field ``model``), if
            ``activation`` is not one of :data:`ACTIVATIONS`, or if it is ``"tanh"`` for
            ``"seed"`` (field ``activation``).

    Example:
        >>> type(make_model("tempered", activation="tanh")).__name__
        'TemperedCNN'
    """
    name = _validate.choice(options=MODELS, model=name)
    activation = _validate.choice(options=ACTIVATIONS, activation=activation)
    if name == "seed":
        if activation != "relu":
            raise PlanError(
                "activation",
                activation,
                "'relu' for model 'seed'",
                "SeedNet is the fixed ReLU network of the super-convergence study; "
                "use model='tempered' for a tanh network.",
            )
        return SeedNet()
    return TemperedCNN(activation=activation)
