"""DP-SGD step engines: the per-step work behind one small interface.

A step engine takes the batch that the run's Poisson sampler drew and performs **one noisy
step** of DP-SGD on it: per-example gradients, each clipped to ``plan.max_grad_norm`` as a
whole (all parameters, one L2 norm), summed, Gaussian noise N(0, σ²C²) added from the run's
secret generator, divided by the expected batch size B (Opacus' ``loss_reduction="mean"``
convention), then the optimizer's update. Every engine steps an Opacus ``RDPAccountant`` with
(σ, q) once per noisy step, so the run can cross-check dpplan's ε against Opacus' and count
the steps it took.

Engines:

* ``"opacus"``: Opacus' ``GradSampleModule`` (per-example gradients from backward hooks) and
  ``DPOptimizer``; its accountant is fed by the optimizer's step hook.
* ``"fused"``: per-example gradients with ``torch.func`` (``functional_call`` and
  ``vmap(grad)``, dropout with ``randomness="different"``), clipping and summing in one
  function, optionally ``torch.compile``d. With compilation the batch is padded to a fixed
  cap with a mask so shapes stay static; a batch larger than the cap is processed whole, in
  several chunks: it is never truncated or resampled, since either would change the mechanism
  that the accountant bounds.
* ``"non_private"`` (used for ``RunOptions(private=False)`` whatever the engine): plain SGD on
  the batch's mean loss, no clipping, no noise, no accountant.

Every engine takes the task's loss (``loss(outputs, targets)``, a batch mean; cross-entropy
by default): the fused engine differentiates it on each example alone, Opacus' hooks on the
batch. A step engine is a :class:`StepEngine` protocol: ``step``, its own ``steps`` count,
``set_mechanism`` (a phase boundary of a phased plan: new σ, C, B and q) and
``state_dict``/``load_state_dict`` (optimizer, accountant history, steps) for checkpoints.

Both private engines draw the noise for each parameter, in parameter order, with
``torch.normal(0, σC, shape, generator=...)`` exactly as Opacus does, so for the same batch,
dropout and generator state they give the same update (tested).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from dpplan.errors import PlanError
from dpplan.phased import PhasedPlan
from dpplan.plan import TrainingPlan
from dpplan.train.specs import ENGINES
from dpplan.train.tasks import Loss, check_model

__all__ = [
    "ENGINES",
    "FusedEngine",
    "Mechanism",
    "NonPrivateEngine",
    "OpacusEngine",
    "StepEngine",
    "batch_cap",
    "make_engine",
]


#: Opacus' guard against dividing by a zero norm in the clip factor (kept identical so the
#: engines agree to round-off).
_NORM_EPSILON = 1e-6


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Mechanism:
    """What one noisy step does: the part of a plan a step engine needs.

    Attributes:
        noise_multiplier: σ; the noise added to the clipped sum has std σ·C.
        max_grad_norm: the clipping norm C of each example's whole gradient.
        expected_batch_size: B; the noisy sum is divided by it.
        sample_rate: q, the Poisson sample rate (for Opacus' accountant).
    """

    noise_multiplier: float
    max_grad_norm: float
    expected_batch_size: int
    sample_rate: float

    @classmethod
    def from_plan(cls, plan: TrainingPlan) -> Mechanism:
        """Return the mechanism that ``plan`` accounts for."""
        return cls(
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm,
            expected_batch_size=plan.batch_size,
            sample_rate=plan.sample_rate,
        )


def batch_cap(batch_size: int) -> int:
    """Return the padded batch length for an expected Poisson batch of ``batch_size``.

    The cap is the expected size plus six standard deviations of the Poisson batch size,
    rounded up to a multiple of 8; a larger batch (rare) is processed in extra chunks.
    """
    cap = batch_size + 6 * math.sqrt(batch_size) + 1
    return int(8 * math.ceil(cap / 8))


@runtime_checkable
class StepEngine(Protocol):
    """What the trainer needs of a step engine (see the module docstring).

    Attributes:
        name: the engine's name (``"fused"``, ``"opacus"`` or ``"non_private"``).
        model: the bare model (what is evaluated and checkpointed).
        optimizer: the bare optimizer (what schedules adjust and checkpoints hold).
        accountant: Opacus' RDP accountant, stepped once per noisy step (``None`` when
            non-private).
        steps: noisy steps taken (plain steps when non-private), counted by the engine.
    """

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    accountant: Any

    @property
    def steps(self) -> int: ...

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Take one step on the batch; return its mean loss (NaN for an empty batch)."""
        ...

    def set_mechanism(self, mechanism: Mechanism) -> None:
        """Use ``mechanism`` (σ, C, B, q) from the next step on: a phase boundary."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The engine's state: ``steps``, ``optimizer`` and ``accountant_history``."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class _Engine:
    """The state every engine shares: the optimizer, the accountant and the step count."""

    name: ClassVar[str]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    accountant: Any = None
    _plain_steps: int = 0

    @property
    def steps(self) -> int:
        """Noisy steps counted by the accountant (steps taken, when non-private)."""
        if self.accountant is None:
            return self._plain_steps
        return sum(count for _, _, count in self.accountant.history)

    def state_dict(self) -> dict[str, Any]:
        """Return ``steps``, the optimizer's state and the accountant's (σ, q, steps) history,
        as tensors and plain Python values (``torch.load(weights_only=True)`` reads them)."""
        history = None
        if self.accountant is not None:
            history = [
                [float(sigma), float(rate), int(count)]
                for sigma, rate, count in self.accountant.history
            ]
        return {
            "steps": int(self.steps),
            "optimizer": self.optimizer.state_dict(),
            "accountant_history": history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            KeyError, ValueError, TypeError: if the state does not fit this engine.
        """
        self.optimizer.load_state_dict(state["optimizer"])
        if self.accountant is not None:
            self.accountant.history = [
                (float(sigma), float(rate), int(count))
                for sigma, rate, count in state["accountant_history"]
            ]
        else:
            self._plain_steps = int(state["steps"])


def _rdp_accountant():
    from opacus.accountants import RDPAccountant

    return RDPAccountant()


class NonPrivateEngine(_Engine):
    """Plain SGD on the batch's mean loss (the non-private baseline)."""

    name = "non_private"

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, *, loss: Loss | None = None
    ) -> None:
        self.model, self.optimizer, self.accountant = model, optimizer, None
        self.loss = F.cross_entropy if loss is None else loss
        self._plain_steps = 0

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = math.nan
        if len(images):
            batch_loss = self.loss(self.model(images), labels)
            batch_loss.backward()
            loss = float(batch_loss.detach())
        self.optimizer.step()
        self._plain_steps += 1
        return loss

    def set_mechanism(self, mechanism: Mechanism) -> None:
        """Nothing to change: the non-private engine neither clips nor adds noise."""


class _PrivateEngine(_Engine):
    """What both DP-SGD engines share: the model check, the batch-mean loss (default
    cross-entropy), the secret noise generator and Opacus' RDP accountant, which counts every
    noisy step; :meth:`_attach` sets up the engine's own per-example machinery."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        mechanism: Mechanism,
        *,
        noise_generator: torch.Generator,
        loss: Loss | None = None,
    ) -> None:
        check_model(model, self.name)
        self.model, self.optimizer = model, optimizer
        self.loss = F.cross_entropy if loss is None else loss
        self.noise_generator = noise_generator
        self.accountant = _rdp_accountant()
        self._attach(mechanism)

    def _attach(self, mechanism: Mechanism) -> None:
        raise NotImplementedError


class OpacusEngine(_PrivateEngine):
    """Opacus' hook-based per-example gradients and ``DPOptimizer``."""

    name = "opacus"

    def _attach(self, mechanism: Mechanism) -> None:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        model = self.model
        try:
            self._wrapped = GradSampleModule(model, loss_reduction="mean")
        except NotImplementedError as exc:
            raise PlanError(
                "model",
                type(model).__name__,
                "layers Opacus computes per-example gradients for",
                f"Opacus: {exc}. Use engine='fused' (torch.func) for this model.",
            ) from exc
        self._dp_optimizer = DPOptimizer(
            self.optimizer,
            noise_multiplier=mechanism.noise_multiplier,
            max_grad_norm=mechanism.max_grad_norm,
            expected_batch_size=mechanism.expected_batch_size,
            loss_reduction="mean",
            generator=self.noise_generator,
        )
        self.mechanism = mechanism
        # Opacus' own hook (``get_optimizer_hook_fn``) fixes q when attached; this one reads
        # the current mechanism's, so a phase boundary changes q and σ together.
        self._dp_optimizer.attach_step_hook(
            lambda optimizer: self.accountant.step(
                noise_multiplier=optimizer.noise_multiplier,
                sample_rate=self.mechanism.sample_rate * optimizer.accumulated_iterations,
            )
        )

    def set_mechanism(self, mechanism: Mechanism) -> None:
        """Set σ, C and B on Opacus' optimizer and q on the accountant's hook."""
        self.mechanism = mechanism
        self._dp_optimizer.noise_multiplier = mechanism.noise_multiplier
        self._dp_optimizer.max_grad_norm = mechanism.max_grad_norm
        self._dp_optimizer.expected_batch_size = mechanism.expected_batch_size

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self._dp_optimizer.zero_grad(set_to_none=True)
        logits = self._wrapped(images)
        if len(images):
            batch_loss = self.loss(logits, labels)
            loss = float(batch_loss.detach())
        else:  # an empty Poisson batch is still a noisy step
            batch_loss, loss = logits.sum() * 0.0, math.nan
        batch_loss.backward()
        self._dp_optimizer.step()
        return loss


class FusedEngine(_PrivateEngine):
    """Per-example gradients with ``torch.func``, clipped and summed in one function.

    Args:
        model: the model (its parameters are updated in place by ``optimizer``).
        optimizer: a torch optimizer over ``model.parameters()``.
        mechanism: σ, C, the expected batch size B and the sample rate q
            (:meth:`Mechanism.from_plan`).
        noise_generator: the run's secret noise generator.
        compile: ``torch.compile`` the per-example gradient function; ``None`` compiles on
            CUDA only (on 2 CPU cores compilation costs more than it saves). If compilation
            fails the engine warns and runs eagerly.
        cap: padded chunk length when compiled (default :func:`batch_cap`); eager chunks
            have at most ``cap`` examples and are not padded.
    """

    name = "fused"

    def __init__(
        self, *args: Any, compile: bool | None = None, cap: int | None = None, **kwargs: Any
    ) -> None:
        self._compile, self._fixed_cap = compile, None if cap is None else int(cap)
        super().__init__(*args, **kwargs)

    def _attach(self, mechanism: Mechanism) -> None:
        model = self.model
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        device = self.params[0].device
        self.compiled = device.type == "cuda" if self._compile is None else bool(self._compile)
        self.mechanism: Mechanism | None = None
        self.last_norms: torch.Tensor | None = None
        self.set_mechanism(mechanism)

    def set_mechanism(self, mechanism: Mechanism) -> None:
        """Use σ, C, B and q of ``mechanism`` from the next step on.

        A new clipping norm builds (and, when compiled, compiles) the per-example function
        again; σ, B and q are read at every step (a new cap is a new static shape, which a
        compiled function recompiles for by itself).
        """
        previous = self.mechanism
        self.mechanism = mechanism
        self.noise_std = mechanism.noise_multiplier * mechanism.max_grad_norm
        self.max_grad_norm = mechanism.max_grad_norm
        self.cap = (
            batch_cap(mechanism.expected_batch_size) if self._fixed_cap is None else self._fixed_cap
        )
        if previous is None or previous.max_grad_norm != mechanism.max_grad_norm:
            self._build()

    def _build(self) -> None:
        from torch.func import functional_call, grad, vmap

        model, loss_of_batch = self.model, self.loss

        def example_loss(
            params: dict[str, torch.Tensor],
            buffers: dict[str, torch.Tensor],
            image: torch.Tensor,
            label: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            logits = functional_call(model, (params, buffers), (image.unsqueeze(0),))
            loss = loss_of_batch(logits, label.unsqueeze(0))  # a batch of one example
            return loss, loss.detach()

        per_example = vmap(
            grad(example_loss, has_aux=True), in_dims=(None, None, 0, 0), randomness="different"
        )
        max_norm = self.max_grad_norm

        def clipped_sum(params, buffers, images, labels, weights):
            """Sum over the chunk of each example's gradient clipped to C, times ``weights``.

            ``weights`` is 1 for a sampled example and 0 for padding. Returns the sums, the
            per-example gradient norms and the weighted sum of the per-example losses.
            """
            grads, losses = per_example(params, buffers, images, labels)
            flat = [grads[n].reshape(len(images), -1) for n in params]
            norms = torch.stack([g.norm(2, dim=1) for g in flat], dim=1).norm(2, dim=1)
            factor = (max_norm / (norms + _NORM_EPSILON)).clamp(max=1.0) * weights
            # A non-finite gradient would make the clipped sum unbounded: it contributes 0.
            factor = torch.where(torch.isfinite(norms), factor, torch.zeros_like(factor))
            sums = {
                n: torch.einsum("i,i...->...", factor, torch.nan_to_num(grads[n], 0.0, 0.0, 0.0))
                for n in params
            }
            return sums, norms, (losses * weights).sum()

        self._eager = clipped_sum
        self._function: Callable[..., Any] = clipped_sum
        if self.compiled:
            try:
                self._function = torch.compile(clipped_sum, dynamic=False)
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back
                warnings.warn(
                    f"torch.compile failed ({exc}); the fused engine runs eagerly", stacklevel=3
                )
                self.compiled = False

    def _chunks(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        count = len(images)
        for start in range(0, max(count, 1), self.cap):
            chunk_x, chunk_y = images[start : start + self.cap], labels[start : start + self.cap]
            weights = torch.ones(len(chunk_x), device=images.device, dtype=self.params[0].dtype)
            if self.compiled and len(chunk_x) < self.cap:  # static shapes: pad with a mask
                pad = self.cap - len(chunk_x)
                chunk_x = torch.cat([chunk_x, chunk_x.new_zeros((pad, *chunk_x.shape[1:]))])
                chunk_y = torch.cat([chunk_y, chunk_y.new_zeros((pad,))])
                weights = torch.cat([weights, weights.new_zeros((pad,))])
            if len(chunk_x):
                yield chunk_x, chunk_y, weights

    def _call(self, *args: Any) -> Any:
        try:
            return self._function(*args)
        except Exception as exc:  # a compiled graph that fails at run time
            if self._function is self._eager:
                raise
            warnings.warn(
                f"the compiled fused step failed ({type(exc).__name__}: {exc}); running eagerly",
                stacklevel=3,
            )
            self._function, self.compiled = self._eager, False
            return self._eager(*args)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        params = {n: p.detach() for n, p in zip(self.names, self.params)}
        buffers = {n: b.detach() for n, b in self.model.named_buffers()}
        totals = [torch.zeros_like(p) for p in self.params]
        norms, loss_sum = [], 0.0
        for chunk_x, chunk_y, weights in self._chunks(images, labels):
            sums, chunk_norms, chunk_loss = self._call(params, buffers, chunk_x, chunk_y, weights)
            for total, name in zip(totals, self.names):
                total.add_(sums[name])
            norms.append(chunk_norms[weights > 0])
            loss_sum += float(chunk_loss)
        self.last_norms = torch.cat(norms) if norms else None
        for p, total in zip(self.params, totals):
            noise = torch.normal(
                mean=0.0,
                std=self.noise_std,
                size=p.shape,
                device=p.device,
                generator=self.noise_generator,
                dtype=p.dtype,
            )
            p.grad = (total + noise) / self.mechanism.expected_batch_size
        self.optimizer.step()
        self.accountant.step(
            noise_multiplier=self.mechanism.noise_multiplier,
            sample_rate=self.mechanism.sample_rate,
        )
        return loss_sum / len(images) if len(images) else math.nan


def make_engine(
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    plan: TrainingPlan | PhasedPlan,
    *,
    private: bool,
    noise_generator: torch.Generator,
    compile: bool | None = None,
    loss: Loss | None = None,
) -> StepEngine:
    """Return the step engine ``name`` (or the non-private one when ``private`` is False).

    The engine starts with the mechanism of ``plan`` (of its first phase, for a
    :class:`~dpplan.phased.PhasedPlan`); the trainer sets the next phase's at its boundary.

    ``loss`` is the batch-mean loss ``loss(outputs, targets)`` of the task (default
    cross-entropy); the private engines take per-example gradients of it.

    Raises:
        PlanError: for an unknown engine name, or a model DP-SGD cannot train per example
            (BatchNorm; for ``"opacus"``, whatever Opacus' ModuleValidator refuses).
    """
    if name not in ENGINES:
        raise PlanError(
            "engine",
            name,
            "one of " + ", ".join(repr(e) for e in ENGINES),
            "fused: torch.func + compile (fast); opacus: Opacus' hooks.",
        )
    if not private:
        return NonPrivateEngine(model, optimizer, loss=loss)
    mechanism = Mechanism.from_plan(plan.phases[0] if isinstance(plan, PhasedPlan) else plan)
    if name == "opacus":
        return OpacusEngine(model, optimizer, mechanism, noise_generator=noise_generator, loss=loss)
    return FusedEngine(
        model, optimizer, mechanism, noise_generator=noise_generator, compile=compile, loss=loss
    )
