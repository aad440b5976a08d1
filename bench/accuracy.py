"""Accuracy evidence: what an ε buys on MNIST, one-cycle against plateau at equal ε.

The set-up of issue #4: σ = 1.0, B = 512, δ = 1e-5 on the full MNIST training set (55,000
after the validation hold-out), the seed network, one-cycle for 1 and for 4 epochs against a
plateau schedule whose learning rate is tuned on validation accuracy over the same 4 epochs
(so both are compared at the same ε); and the tanh tempered CNN for 25 epochs. Every run goes
through ``dpplan.train.train``, so ε is dpplan's PRV bound and Opacus' ε is recorded beside it.

    python bench/accuracy.py [--device auto] [--quick] [--skip-tanh] [--output FILE.md]

``--quick`` trains on 10,000 examples with one learning rate per schedule (a smoke run).
The learning rate of each schedule is selected on validation accuracy from a small grid;
the number of runs tried is printed (that selection is not covered by ε).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import dpplan
from dpplan.store import RunStore
from dpplan.train import Constant, OneCycle, Plateau, RunOptions, start_run, training_set_size

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _best(runs):
    return max(runs, key=lambda run: run.records[-1].validation_accuracy)


def main() -> int:
    """Run the experiments and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-tanh", action="store_true")
    parser.add_argument("--output", default=None, help="also write the table here")
    parser.add_argument("--one-cycle-lrs", default="2,4,8", help="one-cycle peak LR grid")
    parser.add_argument("--plateau-lrs", default="0.25,0.5,1", help="plateau start LR grid")
    parser.add_argument("--tanh-only", action="store_true", help="only the tanh CNN run")
    parser.add_argument("--tanh-lrs", default="0.5,1,2", help="tanh CNN constant-LR grid")
    args = parser.parse_args()
    store = RunStore(tempfile.mkdtemp(prefix="dpplan-accuracy-"))
    subset = 10_000 if args.quick else None
    one_cycle_grid = tuple(float(x) for x in args.one_cycle_lrs.split(","))
    plateau_grid = tuple(float(x) for x in args.plateau_lrs.split(","))
    if args.quick:
        one_cycle_grid, plateau_grid = one_cycle_grid[:1], plateau_grid[:1]
    options = RunOptions(
        device=args.device,
        data_dir=args.data_dir,
        subset=subset,
        validation_size=5000 if not args.quick else 1000,
        method="prv",
    )
    base = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=512,
        noise_multiplier=1.0,
        epochs=1,
        delta=1e-5,
    )
    started = time.time()
    rows = []
    tried = 0

    def run(plan, spec, run_options=options):
        nonlocal tried
        tried += 1
        result = start_run(plan, spec, run_options, store=store)
        last = result.records[-1]
        print(
            f"  {spec.kind} {spec.to_dict()} {plan.epochs} ep: val {last.validation_accuracy:.4f}"
            f" test {last.test_accuracy:.4f} ε {last.epsilon:.3f} "
            f"({sum(r.seconds for r in result.records):.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        return result

    for epochs in () if args.tanh_only else (1, 4):
        plan = base.replace(epochs=epochs)
        best = _best([run(plan, OneCycle(max_lr=lr)) for lr in one_cycle_grid])
        rows.append(("seed net, one-cycle", best, len(one_cycle_grid)))
    if not args.tanh_only:
        plan = base.replace(epochs=4)
        best = _best([run(plan, Plateau(lr=lr)) for lr in plateau_grid])
        rows.append(("seed net, plateau (tuned)", best, len(plateau_grid)))
    if not args.skip_tanh:
        tanh_options = RunOptions(
            device=args.device,
            data_dir=args.data_dir,
            subset=subset,
            validation_size=options.validation_size,
            method="prv",
            model="tempered",
            activation="tanh",
        )
        plan = base.replace(epochs=25 if not args.quick else 2)
        tanh_grid = tuple(float(x) for x in args.tanh_lrs.split(","))
        best = _best([run(plan, Constant(lr=lr, momentum=0.5), tanh_options) for lr in tanh_grid])
        rows.append(("tempered CNN, tanh, constant lr", best, len(tanh_grid)))
    lines = [
        (
            f"machine: {platform.platform()}; device {rows[0][1].device}; "
            f"{'QUICK (10k examples) ' if args.quick else ''}{tried} runs, "
            f"{(time.time() - started) / 60:.1f} min"
        ),
        "",
        (
            "| set-up | epochs | selected schedule | LRs tried | ε (PRV) | Opacus ε (RDP) | "
            "val acc | test acc | s/epoch |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result, grid in rows:
        last = result.records[-1]
        lr = result.schedule.get("max_lr", result.schedule.get("lr"))
        seconds = sum(r.seconds for r in result.records) / len(result.records)
        lines.append(
            f"| {name} | {result.plan.epochs} | {result.schedule['kind']} lr={lr:g} | {grid} | "
            f"{last.epsilon:.3f} | {last.epsilon_opacus:.3f} | {last.validation_accuracy:.2%} | "
            f"{last.test_accuracy:.2%} | {seconds:.1f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
