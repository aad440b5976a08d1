# %% [markdown]
# # 03 · Tempered sigmoids: tanh against ReLU at equal ε
#
# **Seed paper 001**: Papernot, Thakurta, Song, Chien & Erlingsson, *Tempered sigmoid
# activations for deep learning with differential privacy* ("Making the shoe fit",
# `shared/papers/making-the-shoe-fit-tempered-sigmoids.md`). Its claim: in the same CNN
# (Table 1: two convolutions with max-pooling, a 32-unit layer), trained with identical DP-SGD
# settings, **tanh** activations beat **ReLU**: on MNIST **98.1% against 96.6% at
# ε = 2.93**, δ = 10⁻⁵ (§6's table; §4's text says 98.0%; Fig. 2 averages 10 runs per curve).
# The paper states neither σ, the batch size nor the epochs of that run. The authors'
# explanation: bounded activations keep gradients from exploding, so clipping destroys less
# signal.
#
# Here dpplan trains its `tempered` model (that architecture, k = 16 and 32 filters) with
# either activation on the same plans, at two privacy levels, 5 seeds each (full mode), and
# plots test accuracy against ε epoch by epoch with a band of one sample standard deviation
# over seeds. The learning rate of each activation is chosen on the validation split (not the
# test set) at each privacy level; the verdict is the mean difference with a 95% Welch t
# interval.
#
# **Which plan is "the paper's" is our reading, not the paper's statement**: TF Privacy's
# tutorial table lists σ = 1.12, B = 256, 60 epochs → ε = 2.92 and 96.6% for a ReLU network,
# the paper's ReLU figure, and the moments accountant gives 2.93 for it (notebook 01). We borrow
# that plan. The first privacy level here is **that plan's ε by dpplan's bound**, the second
# **ε = 1**.

# %% tags=["parameters"]
QUICK = False  # True: 2,000 examples, 1 epoch, 1 seed, CPU (the test suite runs this)

# %%
import datetime
import platform
import tempfile
import time

import matplotlib

matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import torch  # only to name the device below
from IPython.display import Markdown, display

import dpplan
from dpplan.stats import mean_difference, sample_std
from dpplan.train import Constant, RunOptions, RunStore, training_set_size
from dpplan.train.compare import compare_schedules

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
# With a GPU the paper's scale runs (`python notebooks/run_all.py --full --only 03`): all
# 55,000 training images, B = 256, 60 epochs, 5 seeds. On a CPU the full run is reduced: an
# 8,000-image subset (2,000 held out for validation), B = 256, 6 epochs, 5 seeds, σ solved so
# that 6 epochs reach the same ε as the paper's 60 (fewer, noisier steps: expect lower
# accuracy than the paper's). That shortening affects both activations alike is an
# **assumption this run does not test**; the GPU run at 60 epochs does. Each activation's
# constant learning rate (SGD, momentum 0.5) is chosen from a 5-value grid on validation
# accuracy with the first seed; a selection at an end of the grid is flagged. Quick mode (the
# test suite) uses 1 seed, and its verdicts say "cannot tell".

# %%
if QUICK:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH, EPOCHS = 2_000, 500, 1_000, 64, 1
    SEEDS, LRS = (0,), (0.5,)
elif GPU:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH, EPOCHS = None, 5_000, None, 256, 60
    SEEDS, LRS = (0, 1, 2, 3, 4), (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
else:
    SUBSET, VALIDATION, TEST_SUBSET, BATCH, EPOCHS = 8_000, 2_000, None, 256, 6
    SEEDS, LRS = (0, 1, 2, 3, 4), (0.125, 0.25, 0.5, 1.0, 2.0)

paper_plan = dpplan.TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.12, epochs=60, delta=1e-5
)
paper_epsilon = dpplan.compare(paper_plan).headline_epsilon
base_options = RunOptions(
    device=DEVICE,
    subset=SUBSET,
    validation_size=VALIDATION,
    test_subset=TEST_SUBSET,
    model="tempered",
)
N = training_set_size(base_options)
start = dpplan.TrainingPlan(
    dataset_size=N, batch_size=BATCH, noise_multiplier=1.0, epochs=EPOCHS, delta=1e-5
)
LEVELS = {"the paper's ε": paper_epsilon, "ε = 1": 1.0}
plans = {
    name: dpplan.solve_noise_multiplier(start, target_epsilon=target, method="prv")
    for name, target in LEVELS.items()
}
display(
    Markdown(
        f"The borrowed plan (σ = 1.12, B = 256, 60 epochs; published ε = 2.93) has dpplan "
        f"ε = {paper_epsilon:.3f}. Plans trained "
        f"here ({N:,} images, B = {BATCH}, {EPOCHS} epoch(s)): "
        + "; ".join(
            f"{name}: σ = {plan.noise_multiplier:.3f}, ε = "
            f"{dpplan.compare(plan).headline_epsilon:.3f}"
            for name, plan in plans.items()
        )
        + f". Seeds {SEEDS}; learning-rate grid {LRS}."
    )
)

# %% [markdown]
# ## Training
#
# For each privacy level and activation, `compare_schedules` trains every learning rate of
# the grid with the first seed, keeps the best on validation accuracy, and repeats it with
# the other seeds. Both activations train on the same plan, so at each level they spend
# exactly the same ε.

# %%
store = RunStore(tempfile.mkdtemp(prefix="dpplan-notebook-03-"))  # a throw-away run store
grid = {"constant": tuple(Constant(lr=lr, momentum=0.5) for lr in LRS)}
results, per_seed = {}, {}
runs_tried = 0
for level, plan in plans.items():
    for activation in ("tanh", "relu"):
        options = RunOptions(
            device=DEVICE,
            subset=SUBSET,
            validation_size=VALIDATION,
            test_subset=TEST_SUBSET,
            model="tempered",
            activation=activation,
        )
        comparison = compare_schedules(plan, grids=grid, seeds=SEEDS, options=options, store=store)
        runs_tried += comparison.runs_tried
        summary = comparison.summaries[0]
        runs = [store.get_run(i) for i in summary.run_ids]  # every seed of the selected LR
        results[level, activation] = summary
        per_seed[level, activation] = [
            [run.records[k].test_accuracy for run in runs] for k in range(len(summary.epochs))
        ]
display(Markdown(f"{runs_tried} training runs in {(time.time() - STARTED) / 60:.1f} min."))

# %%
fig, axes = plt.subplots(1, len(plans), figsize=(11, 4), sharey=True)
for ax, level in zip(axes, plans):
    for activation, color in (("tanh", "C2"), ("relu", "C1")):
        summary = results[level, activation]
        mean = [100 * a for a in summary.accuracy_mean]
        std = [100 * sample_std(values) for values in per_seed[level, activation]]
        lr = summary.selected["lr"]
        ax.plot(summary.epsilons, mean, "o-", color=color, ms=4, label=f"{activation} (lr {lr:g})")
        ax.fill_between(
            summary.epsilons,
            [m - s for m, s in zip(mean, std)],
            [m + s for m, s in zip(mean, std)],
            color=color,
            alpha=0.25,
        )
    if level == "the paper's ε":
        ax.plot(
            [paper_epsilon],
            [98.1],
            "*",
            color="C2",
            ms=14,
            mec="k",
            label="paper, tanh (60 epochs)",
        )
        ax.plot(
            [paper_epsilon],
            [96.6],
            "*",
            color="C1",
            ms=14,
            mec="k",
            label="paper, ReLU (60 epochs)",
        )
    ax.set(
        title=f"{level}: σ = {plans[level].noise_multiplier:.2f}, {EPOCHS} epoch(s)",
        xlabel="ε at δ = 1e-5 (PRV), after each epoch",
    )
    ax.legend(fontsize=8, loc="lower right")
axes[0].set_ylabel(f"test accuracy, % (mean ± sample std, {len(SEEDS)} seed(s))")
plt.show()

# %% [markdown]
# ## Verdict, from the numbers above


# %%
def lr_edge(level, activation):
    """Where the selected learning rate sits in the grid, if at an end (else "")."""
    lr = results[level, activation].selected["lr"]
    if len(LRS) > 1 and lr in (min(LRS), max(LRS)):
        return f"{activation} LR {lr:g} at the {'top' if lr == max(LRS) else 'bottom'} of {LRS}"
    return ""


sentences, edges, differences = [], [], {}
for level in plans:
    tanh, relu = results[level, "tanh"], results[level, "relu"]
    difference = mean_difference(per_seed[level, "tanh"][-1], per_seed[level, "relu"][-1])
    differences[level] = difference
    edge = [e for e in (lr_edge(level, "tanh"), lr_edge(level, "relu")) if e]
    edges += [f"{level}: {e}" for e in edge]
    sentences.append(
        f"at {level} (final ε = {tanh.epsilons[-1]:.2f}) tanh reaches "
        f"{tanh.accuracy_mean[-1]:.1%} (lr {tanh.selected['lr']:g}) and ReLU "
        f"{relu.accuracy_mean[-1]:.1%} (lr {relu.selected['lr']:g}): "
        + (
            "quick mode, one seed: cannot tell"
            if len(SEEDS) == 1
            else difference.describe("tanh", "ReLU")
        )
        + (" [a selected LR sits at a grid edge]" if edge else "")
    )
paper_gap = 98.1 - 96.6
first = next(iter(plans))
measured = 100 * differences[first].difference
verdict = "cannot tell" if len(SEEDS) == 1 else differences[first].verdict
display(
    Markdown(
        "After the last epoch, " + "; ".join(sentences) + " (95% Welch t intervals over seeds; "
        '"tied" means the interval lies within ±1 point). '
        f"The paper's gap at its (borrowed) plan was {paper_gap:+.1f} points; here it is "
        f"{measured:+.1f}: "
        + (
            "tanh is ahead, the paper's direction"
            if verdict == "ahead" and measured > 0
            else "ReLU is ahead, against the paper's direction"
            if verdict == "ahead"
            else "the two are tied to within a point"
            if verdict == "tied"
            else "these seeds cannot tell the direction"
        )
        + f" in this set-up ({N:,} training images, {EPOCHS} epoch(s) instead of the paper's 60, "
        f"{len(SEEDS)} seed(s), {runs_tried} runs, on {device_name})."
        + (
            " **Selected at an end of the learning-rate grid** (that arm's optimum may lie "
            "outside it, so its accuracy is a lower bound on what it reaches): "
            + "; ".join(edges)
            + "."
            if edges
            else " No selected learning rate sits at an end of its grid."
        )
        + " Choosing each activation's learning rate touched the data in every tried run; that "
        "choice is not covered by the plans' ε."
    )
)
if not GPU:
    display(
        Markdown(
            "**Owed:** this run is reduced for a CPU (see Settings). The paper's scale (all 55,000 "
            "training images, 60 epochs, 5 seeds, a 6-value LR grid from 0.125 to 4) runs with "
            "`python notebooks/run_all.py --full --only 03` on a machine with a GPU. It would add "
            "the test of the assumption made here (that 6 epochs at the same ε shift both "
            "activations alike) and accuracy at the paper's data size."
        )
    )
