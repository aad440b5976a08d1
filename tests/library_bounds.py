"""ε of a plan straight from the wrapped libraries, to check dpplan's answers against."""

from __future__ import annotations

from dpplan.plan import TrainingPlan


def library_epsilon(method: str, plan: TrainingPlan) -> float:
    """ε of ``plan`` straight from the wrapped library (not through dpplan's backends).

    RDP: dp-accounting's RdpAccountant (dpplan equals it to 1e-12). PLD: dp-accounting's
    PLDAccountant at dpplan's discretisation (dpplan's bound is at least it). PRV:
    prv-accountant's upper bound at dpplan's error settings (dpplan's is at least it).
    """
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    from dpplan.accounting.events import dpsgd_event
    from dpplan.accounting.pld import DEFAULT_VALUE_DISCRETIZATION_INTERVAL
    from dpplan.accounting.prv import DEFAULT_DELTA_ERROR_FRACTION, DEFAULT_EPS_ERROR
    from dpplan.accounting.rdp import DEFAULT_ORDERS

    if method == "rdp":
        library = rdp_privacy_accountant.RdpAccountant(orders=list(DEFAULT_ORDERS))
    elif method == "pld":
        library = pld_privacy_accountant.PLDAccountant(
            value_discretization_interval=DEFAULT_VALUE_DISCRETIZATION_INTERVAL
        )
    else:
        import prv_accountant

        mechanism = prv_accountant.PoissonSubsampledGaussianMechanism(
            sampling_probability=plan.sample_rate, noise_multiplier=plan.noise_multiplier
        )
        library = prv_accountant.PRVAccountant(
            prvs=[mechanism],
            max_self_compositions=[plan.total_steps],
            eps_error=DEFAULT_EPS_ERROR,
            delta_error=plan.delta * DEFAULT_DELTA_ERROR_FRACTION,
        )
        return float(
            library.compute_epsilon(delta=plan.delta, num_self_compositions=[plan.total_steps])[2]
        )
    assert isinstance(library, dp_accounting.PrivacyAccountant)
    library.compose(dpsgd_event(plan))
    return float(library.get_epsilon(plan.delta))
