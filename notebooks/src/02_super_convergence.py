# %% [markdown]
# # 02 · Super-convergence under DP-SGD: the published experiment, then a fair one
#
# **Seed paper 000**: Frisk, Dörmann, Lillelund & Pedersen, *Super-convergence and
# Differential Privacy: Training faster with better privacy guarantees*
# (`shared/papers/super-convergence-and-dp.md`). On MNIST, a CNN trained with the one-cycle
# learning-rate policy (peak LR 15.62) reached **92.7%** validation accuracy after **1 epoch**;
# the same CNN with a plateau schedule (LR 0.05, falling "by three orders of magnitude")
# reached **90.5%** after **25 epochs** (Exp. 1, §V.B). The ε are reported in other
# experiments, without epochs: **1.75** against **7.27** (Exp. 2, §V.C) and **1.75** against
# **5.025** (Exp. 3, §V.D, for models at 93% and 92%), δ = 10⁻⁵, by "the moments accountant
# method using RDP-based composition" in Opacus and PyVacy (§V.A). σ and the batch size are
# not stated. The paper concludes that super-convergence gives better accuracy *and* better
# privacy.
#
# Notebook 01 shows that, with the paper's accountant, one noise level *can* give 1.75 after
# 1 epoch and 5.025 after 25 (at a batch size of about 1-2 thousand), but not 7.27 after 25
# epochs for any B ≤ 8192; so whether the two schedules were run at one noise level is not
# known from the paper. Either way they spent different ε. This notebook
#
# 1. re-runs the experiment as published, each schedule at its own ε;
# 2. runs the fair version with dpplan's frontier sweep: at each target ε, each schedule's
#    epochs and learning rate chosen on a held-out validation split (so both spend exactly
#    that ε), repeated over seeds;
# 3. derives the verdict from those numbers.
#
# The paper's "validation" set is MNIST's 10,000 test images; dpplan's validation split is
# held out of the training images (for choosing learning rates and for the plateau schedule),
# and the accuracy compared with the paper's is dpplan's **test** accuracy on those same 10,000
# images.

# %% tags=["parameters"]
QUICK = False  # True: 2,000 examples, 1-2 epochs, 1 seed, CPU (the test suite runs this)

# %%
import dataclasses
import datetime
import itertools
import math
import platform
import time

import matplotlib

matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import torch  # only to name the device below
from IPython.display import Markdown, display

import dpplan
from dpplan.accounting import compose_runs
from dpplan.stats import mean_difference, sample_std
from dpplan.train import OneCycle, Plateau, RunOptions, train, training_set_size

plt.rcParams.update(
    {
        "figure.dpi": 80,
        "figure.figsize": (7.5, 3.8),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
GPU = not QUICK and torch.cuda.is_available()
DEVICE = "cpu" if QUICK else "auto"
device_name = (
    torch.cuda.get_device_name(0)
    if GPU
    else f"CPU ({platform.machine()}, {torch.get_num_threads()} torch thread(s))"
)
display(
    Markdown(
        f"Run on {datetime.date.today().isoformat()} with dpplan "
        f"{dpplan.__version__}, torch {torch.__version__}, on {device_name}; "
        f"QUICK = {QUICK}."
    )
)
STARTED = time.time()

# %% [markdown]
# ## Settings
#
# The published scale (all 55,000 training images left after dpplan's 5,000-image validation
# split, 25 plateau epochs, 5 seeds, epochs up to 25) runs when a GPU is present
# (`python notebooks/run_all.py --full --device cuda --only 02`). On a CPU the full run is
# reduced (31 minutes on 2 shared cores on 2026-12-03:
# `python notebooks/run_all.py --full --device cpu --threads 1 --timeout 5400 --only 02`): an
# 8,000-image training subset (2,000 held out for validation), the same 25 plateau epochs for
# the published run, two target ε (2 and 4, where an earlier 2-seed run claimed a gap), 4, 8
# or 16 epochs, 5 seeds and 4-value learning-rate grids per schedule. The grids were placed
# around the selections of the previous CPU run (2026-12-02: 8 epochs, the top of its 2-4-8
# grid, at both ε; one-cycle 0.2 and 0.5, plateau 2, the top of its grid). Quick mode (the
# test suite) only checks that everything runs, with 1 seed: its verdicts say "cannot tell".
# The paper states neither σ nor the batch size; B = 256 is assumed (as in notebook 01), and σ
# is solved so that each published run's RDP ε is the published one **on this training set**.
#
# The plateau arm of the fair comparison evaluates the validation loss every
# `PLATEAU_EVERY` optimizer steps (`Plateau(evaluate_every=...)`) and cuts its learning rate
# ×0.1 after `PLATEAU_PATIENCE` + 1 evaluations in a row without improvement: on the CPU, 8
# steps (about 4 evaluations per epoch of about 31 steps) and patience 2 (a cut after 24 steps,
# about three-quarters of an epoch, without improvement), so it can act several times within a
# 4-16-epoch run. A plateau evaluated once per epoch that cuts after two epochs without
# improvement (the published run below) is a constant learning rate in runs of 1-3 epochs and
# can cut at most once, for the last epoch, in a 4-epoch run.

# %%
if QUICK:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH = 2_000, 500, 500, 64
    PLATEAU_EPOCHS, TARGETS, FAIR_EPOCHS, SEEDS = 2, (1.0, 2.0), (1,), (0,)
    ONE_CYCLE_LRS, PLATEAU_LRS = (1.0,), (0.8,)
    PLATEAU_EVERY, PLATEAU_PATIENCE = 16, 1  # about 31 steps per epoch
elif GPU:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH = None, 5_000, None, 256
    PLATEAU_EPOCHS, TARGETS = 25, (1.0, 2.0, 4.0, 6.3)
    FAIR_EPOCHS, SEEDS = (1, 2, 4, 8, 16, 25), (0, 1, 2, 3, 4)
    ONE_CYCLE_LRS, PLATEAU_LRS = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0), (0.1, 0.2, 0.5, 1.0, 2.0, 4.0)
    PLATEAU_EVERY, PLATEAU_PATIENCE = 50, 2  # about 215 steps per epoch
else:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH = 8_000, 2_000, None, 256
    PLATEAU_EPOCHS, TARGETS = 25, (2.0, 4.0)
    FAIR_EPOCHS, SEEDS = (4, 8, 16), (0, 1, 2, 3, 4)
    ONE_CYCLE_LRS, PLATEAU_LRS = (0.05, 0.1, 0.2, 0.5), (1.0, 2.0, 4.0, 8.0)
    PLATEAU_EVERY, PLATEAU_PATIENCE = 8, 2  # about 31 steps per epoch

options = RunOptions(
    device=DEVICE, subset=SUBSET, validation_size=VALIDATION, test_subset=TEST_SUBSET, model="seed"
)
N = training_set_size(options)
PUBLISHED = {
    "one-cycle": {
        "epochs": 1,
        "epsilon": 1.75,
        "accuracy": 0.927,
        "schedule": OneCycle(max_lr=15.62),
    },
    "plateau": {"epochs": 25, "epsilon": 7.27, "accuracy": 0.905, "schedule": Plateau(lr=0.05)},
}
PUBLISHED["plateau"]["run_epochs"] = PLATEAU_EPOCHS
PUBLISHED["one-cycle"]["run_epochs"] = 1
display(
    Markdown(
        f"Training set: {N:,} images (validation split {VALIDATION:,}; test set "
        f"{TEST_SUBSET or 10_000:,}), batch size {BATCH}, seeds {SEEDS}, plateau run "
        f"{PLATEAU_EPOCHS} epochs (published 25); frontier at target ε {TARGETS} over "
        f"{FAIR_EPOCHS} epochs, learning rates {ONE_CYCLE_LRS} (one-cycle) and {PLATEAU_LRS} "
        f"(plateau, evaluated every {PLATEAU_EVERY} steps, patience {PLATEAU_PATIENCE} "
        f"evaluations; {N / BATCH:.1f} steps per epoch on average)."
    )
)

# %% [markdown]
# ## 1. The experiment as published
#
# One-cycle with the published peak LR 15.62 for one epoch; plateau with the published LR
# 0.05 (×0.1 after two epochs without validation-loss improvement, evaluated once per epoch)
# for 25 epochs. The ε paired with each run is a **reading, not a published
# pairing**: the paper gives 1 and 25 epochs in Exp. 1 and ε = 1.75 and 7.27 in Exp. 2, without
# saying that they belong to the same runs. Each plan's σ is solved with dpplan's RDP method
# for that ε (the paper's moments accountant converts RDP more loosely and would allow less
# noise: σ 0.871 and 0.644 at B = 256 on 60,000 images, notebook 01).

# %%
published_runs = {}
for name, setup in PUBLISHED.items():
    start = dpplan.TrainingPlan(
        dataset_size=N, batch_size=BATCH, noise_multiplier=1.0, epochs=setup["epochs"], delta=1e-5
    )
    plan = dpplan.solve_noise_multiplier(start, target_epsilon=setup["epsilon"], method="rdp")
    plan = plan.replace(epochs=setup["run_epochs"])
    setup["plan"] = plan
    published_runs[name] = train(plan, setup["schedule"], options)
    last = published_runs[name].records[-1]
    display(
        Markdown(
            f"**{name}**, σ = {plan.noise_multiplier:.3f}, {plan.epochs} epoch(s): test accuracy "
            f"{last.test_accuracy:.1%} (published {setup['accuracy']:.1%}); ε = "
            f"{last.epsilons['rdp']:.2f} by RDP (published {setup['epsilon']}), "
            f"{min(last.epsilons.values()):.2f} by dpplan's tightest bound."
        )
    )

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
for (name, run), color in zip(published_runs.items(), ("C0", "C3")):
    epochs = [r.epoch for r in run.records]
    left.plot(
        epochs,
        [r.test_accuracy for r in run.records],
        "o-",
        color=color,
        ms=4,
        label=f"{name} (re-run)",
    )
    left.plot(
        PUBLISHED[name]["epochs"],
        PUBLISHED[name]["accuracy"],
        "*",
        color=color,
        ms=14,
        label=f"{name} (published)",
    )
    right.semilogy(epochs, [r.lr for r in run.records], "o-", color=color, ms=4, label=name)
left.set(
    xlabel="epoch", ylabel="test accuracy", title="Accuracy as published and re-run", ylim=(0, 1)
)
left.legend(fontsize=8)
right.set(
    xlabel="epoch",
    ylabel="learning rate at the end of the epoch",
    title="Learning rates as run (paper's Fig. 2: plateau falls ×1000)",
)
plt.show()
plateau_lrs = [r.lr for r in published_runs["plateau"].records]
cuts = sum(b < a for a, b in itertools.pairwise(plateau_lrs))
display(
    Markdown(
        f"As run here the plateau learning rate (evaluated once per epoch, as published) was "
        f"cut {cuts} time(s) in {PLATEAU_EPOCHS} epochs, from {plateau_lrs[0]:g} to "
        f"{plateau_lrs[-1]:g}; the paper's fell by three orders of magnitude (its Fig. 2). "
        + (
            f"**This run did not reproduce the paper's schedule**: the plateau arm here was a "
            f"constant learning rate of {plateau_lrs[0]:g} for all {PLATEAU_EPOCHS} epochs (the "
            "validation loss kept improving on this training set, so the rule never fired). "
            if cuts == 0
            else (
                "**This run did not reproduce the paper's schedule**: the validation loss kept "
                "improving on this training set, so the plateau rule fired less often. "
                if plateau_lrs[0] / plateau_lrs[-1] < 100
                else ""
            )
        )
    )
)

one_cycle_acc = published_runs["one-cycle"].records[-1].test_accuracy
plateau_acc = published_runs["plateau"].records[-1].test_accuracy
display(
    Markdown(
        f"Re-run as published, one-cycle reaches {one_cycle_acc:.1%} after one epoch and plateau "
        f"{plateau_acc:.1%} after {PLATEAU_EPOCHS} epochs: the published ordering (one-cycle "
        f"ahead) {'holds' if one_cycle_acc > plateau_acc else 'does not hold'} here"
        + (" (the published peak LR 15.62 diverges in this set-up)" if one_cycle_acc < 0.2 else "")
        + ". Either way the two runs spend different ε with different noise; the next section "
        "asks the question at equal ε."
    )
)

# %% [markdown]
# ## 2. The fair comparison: equal ε, tuned learning rates, several seeds
#
# The question the published experiment did not ask: *at a given ε, what is the best accuracy
# each schedule can reach?* For every target ε and every number of epochs in the grid σ is
# solved (PRV, never above the target), so a 4-epoch and a 16-epoch plan spend the same ε; each
# schedule trains every learning rate of its grid at every number of epochs with the first
# seed, the configuration (epochs and learning rate) with the best **validation** accuracy is
# kept, and it is repeated with the other seeds. This is the protocol of dpplan's frontier
# sweep (`dpplan.sweep`, grid protocol), run here with `dpplan.train.train` because the sweep's
# plateau arm evaluates once per epoch: the plateau arm below is
# `Plateau(evaluate_every=PLATEAU_EVERY, patience=PLATEAU_PATIENCE)` (see Settings), which can
# cut its learning rate within a run; evaluated once per epoch it could not cut at all in runs
# of 1-3 epochs and only a few times in 16. Unlike the sweep, only the configuration selected
# over *all* epochs is repeated with the other seeds (the sweep repeats the best learning rate
# at every number of epochs), which saves runs (on the CPU, 64 training runs instead of 96).
# Each point below is a schedule's selected configuration at one ε, with **test** accuracy as
# the mean over the seeds and error bars of one *sample* standard deviation.

# %%
SCHEDULES = ("one_cycle", "plateau")
grid_of = {"one_cycle": ONE_CYCLE_LRS, "plateau": PLATEAU_LRS}


def schedule_for(kind, lr):
    """The schedule spec of arm ``kind`` at learning rate ``lr`` (peak LR for one-cycle)."""
    if kind == "one_cycle":
        return OneCycle(max_lr=lr)
    return Plateau(lr=lr, patience=PLATEAU_PATIENCE, evaluate_every=PLATEAU_EVERY)


def solved(target, epochs):
    start = dpplan.TrainingPlan(
        dataset_size=N, batch_size=BATCH, noise_multiplier=1.0, epochs=epochs, delta=1e-5
    )
    return dpplan.solve_noise_multiplier(start, target_epsilon=target, method="prv")


def finished(run):
    return run.status == "finished" and bool(run.records)


spent = []  # (plan, epochs) of every run that touched the training data
selection, points = {}, {kind: [] for kind in SCHEDULES}
for target in TARGETS:
    plans = {epochs: solved(target, epochs) for epochs in FAIR_EPOCHS}
    for kind in SCHEDULES:
        tried = {}
        for epochs, lr in itertools.product(FAIR_EPOCHS, grid_of[kind]):
            run = train(
                plans[epochs], schedule_for(kind, lr), dataclasses.replace(options, seed=SEEDS[0])
            )
            spent.append((plans[epochs], len(run.records) + (run.diverged_epoch is not None)))
            tried[(epochs, lr)] = run
        selection[(target, kind)] = {
            key: run.records[-1].validation_accuracy if finished(run) else float("nan")
            for key, run in tried.items()
        }
        (epochs, lr), first = max(
            ((key, run) for key, run in tried.items() if finished(run)),
            key=lambda item: item[1].records[-1].validation_accuracy,
        )
        runs = [first]
        for seed in SEEDS[1:]:
            run = train(
                plans[epochs], schedule_for(kind, lr), dataclasses.replace(options, seed=seed)
            )
            spent.append((plans[epochs], len(run.records) + (run.diverged_epoch is not None)))
            runs.append(run)
        kept = [run for run in runs if finished(run)]
        tests = [run.records[-1].test_accuracy for run in kept]
        points[kind].append(
            {
                "target_epsilon": target,
                "epochs": epochs,
                "lr": lr,
                "plan": plans[epochs],
                "epsilon": first.records[-1].epsilons["prv"],
                "validation_accuracy": first.records[-1].validation_accuracy,
                "tests": tests,
                "mean": sum(tests) / len(tests),
                "sd": sample_std(tests),
                "diverged": len(runs) - len(kept),
                "final_lrs": [run.records[-1].lr for run in kept],
            }
        )


def at_edge(kind, point):
    """What of a selected configuration sits at an end of its grid (empty if nothing)."""
    return [
        f"{what} {value:g} at the {'top' if value == max(grid) else 'bottom'} of {grid}"
        for what, value, grid in (
            ("epochs", point["epochs"], FAIR_EPOCHS),
            ("LR", point["lr"], grid_of[kind]),
        )
        if len(grid) > 1 and value in (min(grid), max(grid))
    ]


lines = [
    (
        "| target ε | schedule | selected epochs | σ | selected LR | final LR (range over "
        "seeds) | validation | test accuracy (mean ± sample std) | at a grid edge? |"
    ),
    "|---|---|---|---|---|---|---|---|---|",
]
for kind in SCHEDULES:
    for point in points[kind]:
        edge = at_edge(kind, point)
        diverged = f", {point['diverged']} diverged" if point["diverged"] else ""
        lines.append(
            f"| {point['target_epsilon']:g} | {kind} | {point['epochs']} | "
            f"{point['plan'].noise_multiplier:.3f} | {point['lr']:g} | "
            f"{min(point['final_lrs']):.2g} … {max(point['final_lrs']):.2g} | "
            f"{point['validation_accuracy']:.1%} | {point['mean']:.1%} "
            + (
                f"± {point['sd']:.1%} (n = {len(point['tests'])}{diverged})"
                if len(point["tests"]) > 1
                else f"(n = 1{diverged}, no spread measured)"
            )
            + f" | "
            f"{'**EDGE**: ' + '; '.join(edge) if edge else 'no'} |"
        )
merged = {}
for plan, epochs in spent:
    merged[plan] = merged.get(plan, 0) + epochs
composed = compose_runs(
    [(plan.replace(epochs=epochs), epochs) for plan, epochs in merged.items() if epochs],
    delta=1e-5,
)
display(
    Markdown(
        "\n".join(lines) + f"\n\n{len(spent)} training runs touched the data. Each run alone "
        "spends at most its target ε; choosing among the runs is covered only by all of them "
        f"composed: ε = {composed.epsilon:.2f} ({composed.method.upper()})."
    )
)

# %% [markdown]
# The selection grid: validation accuracy of every configuration with the first seed (the
# selected one in bold). A selection inside the grid, with lower accuracy on both sides, is
# bracketed; one at an end may have a better value outside the grid.

# %%
for target in TARGETS:
    rows = []
    for kind in SCHEDULES:
        grid = grid_of[kind]
        chosen = next(p for p in points[kind] if p["target_epsilon"] == target)
        rows.append(f"| {kind} | " + " | ".join(f"LR {lr:g}" for lr in grid) + " |")
        rows.append("|---" * (len(grid) + 1) + "|")
        for epochs in FAIR_EPOCHS:
            cells = []
            for lr in grid:
                value = selection[(target, kind)][(epochs, lr)]
                text = "diverged" if math.isnan(value) else f"{value:.1%}"
                bold = (epochs, lr) == (chosen["epochs"], chosen["lr"])
                cells.append(f"**{text}**" if bold else text)
            rows.append(f"| {epochs} epochs | " + " | ".join(cells) + " |")
        rows.append("")
    display(Markdown(f"**Target ε = {target:g}**\n\n" + "\n".join(rows)))

# %%
fig, ax = plt.subplots(figsize=(8, 4.2))
for kind, color in (("one_cycle", "C0"), ("plateau", "C3")):
    ax.errorbar(
        [p["epsilon"] for p in points[kind]],
        [p["mean"] for p in points[kind]],
        yerr=[p["sd"] for p in points[kind]],
        fmt="o-",
        color=color,
        capsize=4,
        label=f"{kind}: best epochs and LR per ε, {len(SEEDS)} seed(s)",
    )
    for p in points[kind]:
        ax.annotate(
            f"{p['epochs']} ep",
            (p["epsilon"], p["mean"]),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize=8,
            color=color,
        )
for (name, run), color in zip(published_runs.items(), ("C0", "C3")):
    last = run.records[-1]
    ax.plot(
        last.epsilons["prv"],
        last.test_accuracy,
        "*",
        color=color,
        ms=14,
        mec="k",
        label=f"{name} as published (re-run)",
    )
ax.set(
    xlabel="ε at δ = 1e-5 (PRV)",
    ylabel="test accuracy",
    title="Accuracy against ε: the equal-ε frontier and the published runs",
)
low = min(p["mean"] - p["sd"] for c in points.values() for p in c)
ax.set_ylim(max(0.0, min(low, one_cycle_acc, plateau_acc) - 0.05), 1.0)
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# ## Verdict, from the numbers above

# %%
sentences, verdicts = [], []
for one, plat in zip(points["one_cycle"], points["plateau"]):
    difference = mean_difference(one["tests"], plat["tests"])
    verdicts.append(difference.verdict if len(SEEDS) > 1 else "cannot tell")
    edge = [f"one-cycle {e}" for e in at_edge("one_cycle", one)] + [
        f"plateau {e}" for e in at_edge("plateau", plat)
    ]
    sentences.append(
        f"at ε = {one['target_epsilon']:g}: one-cycle {one['mean']:.1%} "
        f"({one['epochs']} epoch(s)), plateau {plat['mean']:.1%} "
        f"({plat['epochs']} epoch(s)): "
        + (
            "quick mode, one seed: cannot tell"
            if len(SEEDS) == 1
            else difference.describe("one-cycle", "plateau")
        )
        + (f" [at a grid edge: {'; '.join(edge)}]" if edge else "")
    )
published_gap = PUBLISHED["one-cycle"]["accuracy"] - PUBLISHED["plateau"]["accuracy"]
edges = sorted(
    {
        f"{kind} ({'; '.join(at_edge(kind, p))})"
        for kind, kind_points in points.items()
        for p in kind_points
        if at_edge(kind, p)
    }
)
edge_note = (
    " **Selected at an end of its grid** (the optimum may lie outside it, so these points are "
    "lower bounds on what that schedule reaches at that ε): " + ", ".join(edges) + "."
    if edges
    else " No selection sits at an end of its grid."
)
tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("ahead", "tied", "cannot tell"))
display(
    Markdown(
        "At equal ε, each schedule with its own tuned epochs and learning rate: "
        + "; ".join(sentences)
        + f". Over the {len(verdicts)} privacy levels: {tally} (differences are one-cycle minus "
        f'plateau, 95% Welch t intervals over {len(SEEDS)} seed(s); "tied" means the interval '
        "lies within ±1 point). The paper's "
        f"{published_gap * 100:+.1f}-point advantage for one-cycle (Exp. 1) was measured at "
        "different epochs and, by Exps. 2-3, at a "
        f"{PUBLISHED['plateau']['epsilon'] / PUBLISHED['one-cycle']['epsilon']:.1f}× (or "
        f"{5.025 / 1.75:.1f}×) smaller ε; at equal ε the difference is the one measured here."
        + edge_note
        + f" (Computed on {N:,} training images, B = {BATCH}, on {device_name}; learning rates and "
        f"epochs chosen on the {VALIDATION:,}-image validation split with seed {SEEDS[0]}; the "
        f"notebook took {(time.time() - STARTED) / 60:.1f} min.)"
    )
)
if not GPU:
    display(
        Markdown(
            "**Owed:** this run is reduced for a CPU (see Settings). The published scale (all "
            "55,000 training images, 5 seeds, 6-value learning-rate grids from 0.1 to 4, 1 to 25 "
            "epochs, ε up to 6.3) runs with `python notebooks/run_all.py --full --device cuda "
            "--only 02` on a machine with a GPU. It would add: accuracy at the paper's data size "
            "(the subset costs several points), epoch grids wide enough to bracket the optimum "
            "at every ε, and the comparison at more privacy levels."
        )
    )
