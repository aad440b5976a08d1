"""The one door to accounting libraries' private fields.

dpplan's PLD fast path composes dp-accounting's own single-step PMFs, which the library
exposes only through private attributes (``PrivacyLossDistribution._pmf_remove``,
``_pmf_add``, ``_symmetric``; ``DensePLDPmf._probs``, ``_lower_loss``, ``_discretization``,
``_infinity_mass``; ``SparsePLDPmf`` likewise), and the ledger's fixed-size steps cache the
per-step RDP that ``RdpAccountant`` computes with its private
``_compute_rdp_sample_wor_gaussian``. Every such read is in this module and nowhere
else (``tests/accounting/test_library_guards.py`` greps for it).

On import this module checks that the installed dp-accounting is exactly the version the
reads were verified against (:data:`VERIFIED_DP_ACCOUNTING`, pinned in ``pyproject.toml``)
and that a freshly built PLD has every field with the expected type, and raises
``ImportError`` otherwise: a new release fails loudly in the tests, never silently in a
user's numbers.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata

import numpy as np

__all__ = [
    "VERIFIED_DP_ACCOUNTING",
    "SinglePMF",
    "dense_pmfs",
    "pmf_arrays",
    "sample_wor_gaussian_rdp",
]

#: dp-accounting release whose private fields this module was verified against.
VERIFIED_DP_ACCOUNTING = "0.6.0"


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "not installed"


if _installed("dp-accounting") != VERIFIED_DP_ACCOUNTING:  # pragma: no cover - guard
    raise ImportError(
        f"dpplan's PLD fast path reads dp-accounting's private fields and was verified "
        f"against dp-accounting=={VERIFIED_DP_ACCOUNTING}; found "
        f"{_installed('dp-accounting')}. Install dp-accounting=={VERIFIED_DP_ACCOUNTING}."
    )

import dp_accounting
from dp_accounting.pld import pld_pmf, privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant


@dataclasses.dataclass(frozen=True)
class SinglePMF:
    """A dense single-step PMF of dp-accounting, read out of its private fields.

    Attributes:
        probs: mass of cell j at privacy loss (``lower_loss`` + j) · ``discretization``.
        lower_loss: index of cell 0.
        discretization: grid interval in nats.
        infinity_mass: mass at +∞.
    """

    probs: np.ndarray
    lower_loss: int
    discretization: float
    infinity_mass: float


def _pmfs(pld) -> list:
    remove = pld._pmf_remove
    return [remove] if pld._symmetric else [remove, pld._pmf_add]


def dense_pmfs(pld) -> list[SinglePMF]:
    """The dense PMFs dp-accounting composes for ``pld`` (remove, then add if asymmetric)."""
    out = []
    for pmf in _pmfs(pld):
        dense = pmf.to_dense_pmf()
        out.append(
            SinglePMF(
                probs=np.asarray(dense._probs, dtype=np.float64),
                lower_loss=int(dense._lower_loss),
                discretization=float(dense._discretization),
                infinity_mass=float(dense._infinity_mass),
            )
        )
    return out


def pmf_arrays(pld) -> list[np.ndarray]:
    """The dense probability arrays of ``pld``'s remove and add PMFs (for sizing grids)."""
    return [
        np.asarray(pmf.to_dense_pmf()._probs, dtype=np.float64)
        for pmf in (pld._pmf_remove, pld._pmf_add)
    ]


def sample_wor_gaussian_rdp(q: float, noise_multiplier: float, orders) -> np.ndarray:
    """Per-step RDP at ``orders`` of a Gaussian (``noise_multiplier`` = noise / sensitivity) on
    a fixed-size batch sampled without replacement at rate ``q``: what dp-accounting's
    ``RdpAccountant`` (``REPLACE_ONE``) composes for a ``SampledWithoutReplacementDpEvent``."""
    vector = rdp_privacy_accountant._compute_rdp_sample_wor_gaussian(
        q=q, noise_multiplier=noise_multiplier, orders=orders
    )
    return np.asarray(vector, dtype=np.float64)


def _verify() -> None:
    """Build a small PLD and check every field read above exists with the expected type."""
    pld = privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=2.0,
        sampling_prob=0.1,
        value_discretization_interval=0.1,
        pessimistic_estimate=True,
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )
    problems = []
    if not callable(getattr(rdp_privacy_accountant, "_compute_rdp_sample_wor_gaussian", None)):
        problems.append("rdp_privacy_accountant._compute_rdp_sample_wor_gaussian")
    for name in ("_pmf_remove", "_pmf_add", "_symmetric"):
        if not hasattr(pld, name):
            problems.append(f"PrivacyLossDistribution.{name}")
    for pmf in [p.to_dense_pmf() for p in _pmfs(pld)] if not problems else []:
        if not isinstance(pmf, pld_pmf.DensePLDPmf):
            problems.append(f"{type(pmf).__name__} is not DensePLDPmf")
            continue
        for name, kind in (
            ("_probs", np.ndarray),
            ("_lower_loss", (int, np.integer)),
            ("_discretization", float),
            ("_infinity_mass", float),
        ):
            if not isinstance(getattr(pmf, name, None), kind):
                problems.append(f"DensePLDPmf.{name}")
    if problems:  # pragma: no cover - guard
        raise ImportError(
            "dp-accounting's private fields changed: " + ", ".join(problems) + ". dpplan's PLD "
            f"fast path was verified against dp-accounting=={VERIFIED_DP_ACCOUNTING}."
        )


_verify()
