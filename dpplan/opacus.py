"""A budget guard inside Opacus: :class:`LedgerAccountant`, an Opacus accountant on a Ledger.

::

    ledger = dpplan.Ledger(dataset_size=N, delta=1e-5, budget=3.0)
    engine = opacus.PrivacyEngine()
    engine.accountant = dpplan.opacus.LedgerAccountant(ledger)
    model, optimizer, loader = engine.make_private(module=..., optimizer=...,
                                                   data_loader=..., noise_multiplier=...,
                                                   max_grad_norm=...)

``make_private`` attaches the accountant's hook to the ``DPOptimizer``; Opacus calls it after
the noise is added and **before** the parameters are updated, once per noisy update, with the
effective sample rate (the logical batch's under gradient accumulation or
``BatchMemoryManager``). The hook records the step in the ledger, so a step that would exceed
the budget raises :class:`~dpplan.BudgetExhausted` there and the parameters keep their values.
``engine.get_epsilon(delta)`` then reads the ledger.

This module imports Opacus (and torch) only when :class:`LedgerAccountant` is first used;
``import dpplan`` never loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from dpplan.errors import PlanError
from dpplan.ledger import Ledger

__all__ = ["LedgerAccountant", "ledger_from_history"]  # noqa: F822 (module __getattr__)

#: The accountant's mechanism name (Opacus checks it when loading a state dict).
MECHANISM = "dpplan_ledger"


@functools.cache
def _accountant_class() -> type:
    from opacus.accountants.accountant import IAccountant

    class LedgerAccountant(IAccountant):
        """An Opacus accountant that records every noisy step in a :class:`dpplan.Ledger`.

        Args:
            ledger: the ledger to record into (its budget, if any, is the guard).
            sampling: ``"poisson"`` (Opacus' default ``DPDataLoader``) or ``"shuffle"`` for
                ``make_private(..., poisson_sampling=False)``, whose shuffled fixed batches
                Opacus itself would account as if Poisson. Shuffled steps are recorded with
                no amplification (see :meth:`dpplan.Ledger.record`).
            batch_size: the data loader's batch size; required for ``"shuffle"``.

        Attributes:
            ledger: the ledger.
        """

        def __init__(
            self, ledger: Ledger, *, sampling: str = "poisson", batch_size: int | None = None
        ) -> None:
            if not isinstance(ledger, Ledger):
                raise PlanError("ledger", ledger, "a dpplan.Ledger")
            if sampling not in ("poisson", "shuffle"):
                raise PlanError("sampling", sampling, "'poisson' or 'shuffle'")
            bad_batch = (
                isinstance(batch_size, bool)
                or not isinstance(batch_size, int)
                or not (1 <= batch_size <= ledger.dataset_size)
            )
            if sampling == "shuffle" and bad_batch:
                raise PlanError(
                    "batch_size",
                    batch_size,
                    f"the loader's batch size in [1, {ledger.dataset_size}] for shuffle",
                )
            self.ledger = ledger
            self.sampling = sampling
            self.batch_size = batch_size

        @property
        def history(self) -> list[tuple[float, float, int]]:
            """Opacus' view of the records: ``(noise_multiplier, sample_rate, steps)``."""
            return [(r.noise_multiplier, r.sample_rate, r.steps) for r in self.ledger.records]

        def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
            """Record one noisy step; raise BudgetExhausted (ledger unchanged) if over budget.

            ``sample_rate`` is Opacus' 1/len(loader) times the batches accumulated into this
            update. For shuffled batches that factor k gives the update's batch, k·batch_size.
            """
            if self.sampling == "poisson":
                self.ledger.record(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
                return
            batches_per_epoch = -(-self.ledger.dataset_size // self.batch_size)
            accumulated = max(1, round(sample_rate * batches_per_epoch))
            self.ledger.record(
                noise_multiplier=noise_multiplier,
                batch_size=min(self.ledger.dataset_size, accumulated * self.batch_size),
                sampling="shuffle",
            )

        def get_epsilon(self, delta: float, method: str | None = None) -> float:
            """Return the ledger's ε at ``delta`` (its headline, or ``method``'s bound).

            At the ledger's own δ this is ``ledger.epsilon(method)``; at another δ the
            recorded steps are accounted at that δ.

            Raises:
                PlanError: for an invalid δ or method.
                AccountingError: if the library fails.
            """
            if delta == self.ledger.delta:
                return self.ledger.epsilon(method)
            from dpplan.accounting.segments import epsilon_of_segments

            return epsilon_of_segments(self.ledger.segments(), delta=delta, method=method or "best")

        def __len__(self) -> int:
            return self.ledger.total_steps

        @classmethod
        def mechanism(cls) -> str:
            return MECHANISM

        def state_dict(self, destination: dict | None = None) -> dict:
            """Opacus' checkpoint hook: the ledger's :meth:`~dpplan.Ledger.to_dict`."""
            destination = {} if destination is None else destination
            destination["ledger"] = self.ledger.to_dict()
            destination["mechanism"] = MECHANISM
            return destination

        def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
            """Restore the ledger saved by :meth:`state_dict` (in place)."""
            if not isinstance(state_dict, Mapping) or state_dict.get("mechanism") != MECHANISM:
                raise PlanError("state_dict", state_dict, f"a {MECHANISM} accountant state")
            restored = Ledger.from_dict(state_dict["ledger"])
            self.ledger.__dict__.update(restored.__dict__)

    LedgerAccountant.__module__ = __name__
    return LedgerAccountant


def ledger_from_history(
    history: Iterable[tuple[float, float, int]], *, dataset_size: int, delta: float
) -> Ledger:
    """Return a ledger holding an Opacus accountant's ``history`` (no budget).

    A finished Opacus run can so be re-accounted with dpplan's tighter bounds.

    Args:
        history: ``accountant.history``: ``(noise_multiplier, sample_rate, steps)`` tuples.
        dataset_size: records the batches were sampled from.
        delta: δ of the ledger's ε.

    Raises:
        PlanError: for an invalid entry.

    Example:
        >>> ledger = ledger_from_history([(1.1, 0.01, 100), (1.1, 0.01, 50)],
        ...                              dataset_size=10_000, delta=1e-5)
        >>> ledger.total_steps, len(ledger.records)
        (150, 1)
    """
    ledger = Ledger(dataset_size=dataset_size, delta=delta)
    for entry in history:
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise PlanError("history", entry, "(noise_multiplier, sample_rate, steps) tuples")
        noise_multiplier, sample_rate, steps = entry
        ledger.record(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
    return ledger


def __getattr__(name: str) -> object:
    if name == "LedgerAccountant":
        return _accountant_class()
    raise AttributeError(f"module 'dpplan.opacus' has no attribute {name!r}")
