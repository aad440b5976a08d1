"""Benchmark the ledger (issue 20 §4) and dpplan's dp-accounting accountant (issue 23).

Rows (σ = 1.1, q = 256/60000, δ = 1e-5 unless said):

1. Per-step ε over 10,000 single-step records (the loop calls ``record`` then ``epsilon``
   after every step): ``Ledger.epsilon()`` (headline of RDP, PRV, PLD), ``Ledger.epsilon("rdp")``,
   against recomputing the headline from scratch after every step (``dpplan.epsilon_at`` for
   every method with cold caches; timed at sampled step counts, averaged) and against Opacus'
   ``RDPAccountant`` (``step`` then ``get_epsilon(δ)`` after every step; timed in full, or on
   the first ``--opacus-steps`` steps when that is smaller). Also the guard: ``record`` with
   ``budget=--budget`` (1.9: about 9,300 steps fit) then ``epsilon()`` after every step.
   Truncated Poisson records (``--truncated-steps``, batches cut to ``--max-batch``; PLD only)
   against dp-accounting's ``PLDAccountant`` composing the same event from scratch.
2. The same event through dpplan's dp-accounting accountant (``"pld"``) and through
   dp-accounting's own ``PLDAccountant`` (one (q, σ), 2,350 steps; and two phases); six runs
   of two plans (one phased) composed by ``compose_runs`` against dp-accounting's RDP and PLD
   accountants composing every run's event (the smaller ε); a phased plan's PLD ε curve
   against ``PLDAccountant`` composing each epoch's prefix from scratch.

Usage:
    python bench/ledger.py [--steps N] [--truncated-steps N] [--max-batch B] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logging.getLogger("absl").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")

from bench._machine import cpu_model, usable_cores

SIGMA, BATCH, N, DELTA = 1.1, 256, 60_000, 1e-5


def _ledger_rows(steps: int) -> list[dict]:
    import dpplan
    from dpplan.accounting import clear_caches

    rows = []
    for label, method in (("Ledger.epsilon() headline", None), ('Ledger.epsilon("rdp")', "rdp")):
        clear_caches()
        ledger = dpplan.Ledger(dataset_size=N, delta=DELTA)
        start = time.perf_counter()
        for _ in range(steps):
            ledger.record(noise_multiplier=SIGMA, batch_size=BATCH)
            ledger.epsilon(method)
        total = time.perf_counter() - start
        rows.append({"row": label, "ms_per_step": total / steps * 1e3, "measured": "in full"})

    # With a budget: the guard on every record (it stops the loop at the budget).
    clear_caches()
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA, budget=ARGS.budget)
    start = time.perf_counter()
    done = 0
    try:
        for _ in range(steps):
            ledger.record(noise_multiplier=SIGMA, batch_size=BATCH)
            ledger.epsilon()
            done += 1
    except dpplan.BudgetExhausted:
        pass
    total = time.perf_counter() - start
    rows.append(
        {
            "row": f"record with budget={ARGS.budget} (guard) + epsilon()",
            "ms_per_step": total / max(1, done) * 1e3,
            "measured": f"in full ({done:,} steps fit)",
        }
    )

    # From scratch: the exact headline recomputed with cold caches at sampled step counts.
    plan = dpplan.TrainingPlan(
        dataset_size=N, batch_size=BATCH, noise_multiplier=SIGMA, epochs=1, delta=DELTA
    )
    plan = plan.replace(epochs=-(-steps // plan.steps_per_epoch))
    samples = [max(1, round(steps * k / 8)) for k in range(1, 9)]
    times = []
    for count in samples:
        clear_caches()
        start = time.perf_counter()
        min(dpplan.epsilon_at(plan, steps=count, method=m) for m in dpplan.METHODS)
        times.append(time.perf_counter() - start)
    rows.append(
        {
            "row": "headline from scratch every step",
            "ms_per_step": statistics.mean(times) * 1e3,
            "measured": f"mean of {len(samples)} step counts in [1, {steps}]",
        }
    )

    # Truncated Poisson steps (PLD only; a batch over --max-batch is cut to it): the ledger's
    # read against dp-accounting's PLDAccountant composing the same event from scratch, at the
    # ledger's PLD discretisation interval, at sampled step counts.
    import dp_accounting

    from dpplan.accounting.schemes import TRUNCATED_PLD_INTERVAL

    truncated = min(steps, ARGS.truncated_steps)
    clear_caches()
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA)
    start = time.perf_counter()
    for _ in range(truncated):
        ledger.record(
            noise_multiplier=SIGMA,
            batch_size=BATCH,
            sampling="truncated_poisson",
            max_batch_size=ARGS.max_batch,
        )
        ledger.epsilon()
    total = time.perf_counter() - start
    rows.append(
        {
            "row": f"truncated Poisson (≤{ARGS.max_batch}): Ledger.epsilon() (PLD)",
            "ms_per_step": total / truncated * 1e3,
            "measured": f"in full ({truncated:,} steps)",
        }
    )
    times = []
    for count in [max(1, round(truncated * k / 4)) for k in range(1, 5)]:
        accountant = dp_accounting.pld.PLDAccountant(
            value_discretization_interval=TRUNCATED_PLD_INTERVAL
        )
        event = dp_accounting.TruncatedSubsampledGaussianDpEvent(
            dataset_size=N,
            sampling_probability=BATCH / N,
            truncated_batch_size=ARGS.max_batch,
            noise_multiplier=SIGMA,
        )
        start = time.perf_counter()
        accountant.compose(event, count).get_epsilon(DELTA)
        times.append(time.perf_counter() - start)
    rows.append(
        {
            "row": "truncated Poisson: dp-accounting PLD from scratch",
            "ms_per_step": statistics.mean(times) * 1e3,
            "measured": f"mean of 4 step counts in [1, {truncated}]",
        }
    )

    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    opacus_steps = min(steps, ARGS.opacus_steps)
    start = time.perf_counter()
    for _ in range(opacus_steps):
        accountant.step(noise_multiplier=SIGMA, sample_rate=BATCH / N)
        accountant.get_epsilon(DELTA)
    total = time.perf_counter() - start
    rows.append(
        {
            "row": "Opacus RDPAccountant step + get_epsilon",
            "ms_per_step": total / opacus_steps * 1e3,
            "measured": "in full" if opacus_steps == steps else f"first {opacus_steps} steps",
        }
    )
    return rows


def _accountant_rows() -> list[dict]:
    import dp_accounting

    import dpplan
    from dpplan.accounting import clear_caches

    def event(phases):
        return dp_accounting.ComposedDpEvent(
            [
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), n
                )
                for q, s, n in phases
            ]
        )

    rows = []
    for label, phases in (
        ("one (q, σ), 2,350 steps", [(BATCH / N, SIGMA, 2350)]),
        ("two phases, 1,175 + 590 steps", [(BATCH / N, SIGMA, 1175), (512 / N, 1.5, 590)]),
    ):
        clear_caches()
        start = time.perf_counter()
        ours = dpplan.dp_accounting_accountant("pld").compose(event(phases)).get_epsilon(DELTA)
        ours_time = time.perf_counter() - start
        start = time.perf_counter()
        theirs = dp_accounting.pld.PLDAccountant().compose(event(phases)).get_epsilon(DELTA)
        theirs_time = time.perf_counter() - start
        rows.append(
            {
                "row": label,
                "dpplan_s": ours_time,
                "dp_accounting_s": theirs_time,
                "speedup": theirs_time / ours_time,
                "dpplan_epsilon": ours,
                "dp_accounting_epsilon": theirs,
            }
        )
    rows += _composition_rows(event)
    return rows


def _composition_rows(event) -> list[dict]:
    """A group of runs composed, and a phased plan's ε curve: dpplan against dp-accounting's
    accountants composing every run's (or every prefix's) event from scratch, as a user of
    dp-accounting alone would (and as dpplan did before it built each one-step PLD once)."""
    import dp_accounting

    import dpplan
    from dpplan.accounting import clear_caches, compose_runs, get_accountant

    one = dpplan.PhasedPlan.from_dict(
        {
            "dataset_size": N,
            "delta": DELTA,
            "phases": [
                {"batch_size": BATCH, "noise_multiplier": SIGMA, "epochs": 2},
                {"batch_size": 512, "noise_multiplier": 1.5, "epochs": 1},
            ],
        }
    )
    other = dpplan.PhasedPlan(phases=(one.phases[0].replace(noise_multiplier=1.3, epochs=3),))
    runs = [(one, 3), (other, 3)] * 3
    mechanisms = [m for plan, _ in runs for m in plan.mechanisms(None)]

    rows = []
    clear_caches()
    start = time.perf_counter()
    ours = compose_runs(runs, delta=DELTA).epsilon
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    theirs = min(
        dp_accounting.rdp.RdpAccountant(orders=list(get_accountant("rdp").orders))
        .compose(event(mechanisms))
        .get_epsilon(DELTA),
        dp_accounting.pld.PLDAccountant().compose(event(mechanisms)).get_epsilon(DELTA),
    )
    theirs_time = time.perf_counter() - start
    rows.append(
        {
            "row": "6 runs composed (3 of 2 plans)",
            "dpplan_s": ours_time,
            "dp_accounting_s": theirs_time,
            "speedup": theirs_time / ours_time,
            "dpplan_epsilon": ours,
            "dp_accounting_epsilon": theirs,
        }
    )
    clear_caches()
    start = time.perf_counter()
    curve = dpplan.epsilon_curve(one, method="pld").epsilons
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    theirs = [
        dp_accounting.pld.PLDAccountant().compose(event(one.mechanisms(end))).get_epsilon(DELTA)
        for end in one.epoch_ends()
    ]
    theirs_time = time.perf_counter() - start
    rows.append(
        {
            "row": f"phased ε curve, {len(curve)} epochs (PLD)",
            "dpplan_s": ours_time,
            "dp_accounting_s": theirs_time,
            "speedup": theirs_time / ours_time,
            "dpplan_epsilon": curve[-1],
            "dp_accounting_epsilon": theirs[-1],
        }
    )
    return rows


def main() -> None:
    ledger = _ledger_rows(ARGS.steps)
    accountant = _accountant_rows()
    print(
        f"machine: {cpu_model()}, {usable_cores()} usable cores, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"\nPer-step ε, {ARGS.steps:,} single-step records (σ={SIGMA}, q={BATCH}/{N}, δ={DELTA})")
    base = ledger[0]["ms_per_step"]
    print(f"{'row':52} {'ms/step':>9} {'× headline':>11}  measured")
    for row in ledger:
        print(
            f"{row['row']:52} {row['ms_per_step']:9.3f} {row['ms_per_step'] / base:11.2f}  "
            f"{row['measured']}"
        )
    print(
        "\nSame event: dpplan.dp_accounting_accountant('pld') (then compose_runs, epsilon_curve) "
        "vs dp-accounting"
    )
    print(
        f"{'event':32} {'dpplan s':>9} {'dp-acc s':>9} {'speedup':>8} {'ε dpplan':>10} "
        f"{'ε dp-acc':>10}"
    )
    for row in accountant:
        print(
            f"{row['row']:32} {row['dpplan_s']:9.3f} {row['dp_accounting_s']:9.3f} "
            f"{row['speedup']:8.1f} {row['dpplan_epsilon']:10.5f} "
            f"{row['dp_accounting_epsilon']:10.5f}"
        )
    if ARGS.json:
        Path(ARGS.json).write_text(
            json.dumps({"ledger": ledger, "accountant": accountant}, indent=2)
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--opacus-steps", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=1.9)
    parser.add_argument("--truncated-steps", type=int, default=300)
    parser.add_argument("--max-batch", type=int, default=2 * BATCH)
    parser.add_argument("--json")
    ARGS = parser.parse_args()
    main()
