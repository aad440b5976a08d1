# %% [markdown]
# # 06 · Your own task: train, compare schedules and build a frontier beyond MNIST
#
# dpplan answers "what accuracy does my ε buy, and with which plan?" for any model and data
# you bring as a **`dpplan.train.Task`**: a model factory, training/validation/test sets and a
# loss (cross-entropy by default). dpplan brings the plan, the Poisson sampler, the DP-SGD
# engine, the accounting and the run store. This notebook uses only the public API:
#
# 1. define a tabular task (four Gaussian classes in 10 dimensions, a small MLP);
# 2. train it once with DP-SGD, its plan's `dataset_size` taken from the task;
# 3. compare one-cycle against reduce-on-plateau at equal ε with `compare_schedules`;
# 4. build a small **frontier**: for a few target ε, solve σ, train, and plot accuracy vs ε.
#
# The frontier here is a plain loop in this process: it does **not** use a Ray sweep
# (`dpplan sweep`), which runs the same training on workers that import the task function.
# Every ε is an upper bound at δ for add-or-remove-one neighbours; the sentences comparing
# numbers are written from the numbers. The data are synthetic (no MNIST needed).
#
# A run's seed fixes the model's initialisation; its Poisson sampling and noise come from a
# secure random source (as the privacy guarantee requires), so re-running this notebook gives
# slightly different accuracies (`RunOptions(reproducible=True)` derives them from the seed,
# and the run then has no privacy guarantee).

# %% tags=["parameters"]
QUICK = False  # True: a smaller data set, fewer epochs and rates (the test suite runs this)

# %%
import datetime
import platform
import tempfile
import warnings

import matplotlib

matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch import nn

import dpplan
from dpplan.store import RunStore
from dpplan.train import OneCycle, Plateau, RunOptions, Task, train
from dpplan.train.compare import compare_schedules

torch.set_num_threads(1)  # a small MLP: one thread is fastest
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
warnings.filterwarnings("ignore")
display(
    Markdown(
        f"Run on {datetime.date.today().isoformat()} with dpplan {dpplan.__version__}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {platform.machine()} CPU; "
        f"QUICK = {QUICK}."
    )
)

# %% [markdown]
# ## 1 · The task
#
# Four classes, each a Gaussian around its own centre in 10 dimensions, overlapping enough
# that accuracy depends on how well the model is trained. The training set is what the
# privacy guarantee protects; its size becomes the plan's `dataset_size`. The validation set
# (public, as in dpplan's MNIST runs) selects learning rates and drives the plateau schedule.

# %%
FEATURES, CLASSES = 10, 4
TRAIN_SIZE = 1_000 if QUICK else 10_000
EPOCHS = 3 if QUICK else 10
BATCH_SIZE = 100


def gaussian_classes(count, generator):
    centres = 2.0 * torch.eye(CLASSES, FEATURES)
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    return centres[labels] + torch.randn(count, FEATURES, generator=generator), labels


def make_mlp():
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.Tanh(), nn.Linear(32, CLASSES))


def make_task():
    generator = torch.Generator().manual_seed(0)
    return Task(
        name="gaussian-classes",
        train=gaussian_classes(TRAIN_SIZE, generator),
        validation=gaussian_classes(1_000, generator),
        test=gaussian_classes(2_000, generator),
        model=make_mlp,
    )


task = make_task()
plan = task.plan(batch_size=BATCH_SIZE, noise_multiplier=1.0, epochs=EPOCHS, delta=1e-5)
print(f"task {task.name!r}: {task.dataset_size:,} training examples, classification")
print(f"plan: {plan}")

# %% [markdown]
# ## 2 · One DP-SGD run
#
# `train` is in memory (nothing stored); `start_run` and `compare_schedules` store runs with
# the task's name and a fingerprint of its data. The options' MNIST fields (model,
# activation, subsets) are not used with a task.

# %%
options = RunOptions(device="cpu", threads=1, seed=0)
result = train(plan, OneCycle(max_lr=2.0), options, task=task)
for record in result.records:
    epsilon = min(record.epsilons.values())  # the smallest upper bound of the methods
    print(
        f"epoch {record.epoch}: ε = {epsilon:.3f}, train loss {record.train_loss:.3f}, "
        f"test accuracy {record.test_accuracy:.2%}"
    )
single = result.records[-1]

# %% [markdown]
# ## 3 · One-cycle against plateau at equal ε
#
# `compare_schedules` tunes each schedule's learning rate on the first seed (validation
# accuracy, never the test set) and repeats the selected rate with the other seeds. Both
# schedules train the same plan, so they have the same ε after every epoch.

# %%
store = RunStore(tempfile.mkdtemp(prefix="dpplan-06-"))
grids = {
    "one_cycle": [OneCycle(max_lr=lr) for lr in ((1.0,) if QUICK else (0.5, 1.0, 2.0, 4.0))],
    "plateau": [Plateau(lr=lr) for lr in ((0.25,) if QUICK else (0.1, 0.25, 0.5, 1.0))],
}
seeds = (0,) if QUICK else (0, 1, 2)
comparison = compare_schedules(
    plan, grids=grids, seeds=seeds, options=options, store=store, task=task
)
fig, ax = plt.subplots()
for summary in comparison.summaries:
    mean = torch.tensor(summary.accuracy_mean)
    std = torch.tensor(summary.accuracy_std)
    rate = summary.selected.get("max_lr", summary.selected.get("lr"))
    ax.plot(summary.epsilons, mean, marker="o", label=f"{summary.kind} lr={rate:g}")
    ax.fill_between(summary.epsilons, mean - std, mean + std, alpha=0.2)
ax.set_xlabel("ε (upper bound)")
ax.set_ylabel("test accuracy")
ax.set_title(f"{task.name}: schedules at equal ε ({len(seeds)} seed(s), mean ± sample std)")
ax.legend()
plt.show()
final = {s.kind: s.accuracy_mean[-1] for s in comparison.summaries}
# The words follow the 95% Welch t interval of the difference, not the bare means.
verdicts = "; ".join(
    f"{a} − {b}: {difference.describe(a, b)}" for a, b, difference in comparison.differences()
)
display(
    Markdown(
        f"After {plan.epochs} epochs (ε = {comparison.summaries[0].epsilons[-1]:.3f}) "
        + ", ".join(f"{kind} reaches {value:.2%}" for kind, value in final.items())
        + f" test accuracy (mean over {len(seeds)} seed(s)); "
        + (verdicts or "no interval: a single seed")
        + f". {comparison.runs_tried} runs touched the data; choosing among them is not "
        "covered by the plan's ε."
    )
)

# %% [markdown]
# ## 4 · A frontier: accuracy against the ε you target
#
# For each target ε, `solve_noise_multiplier` finds the smallest σ whose ε after the plan's
# epochs meets the target (certified by the PRV accountant, the fastest here; the run then
# records every method's ε, and the smallest is shown); the task is trained with the
# one-cycle rate the comparison selected, and the final test accuracy is read. A plain loop,
# not a Ray sweep.

# %%
one_cycle = next(s for s in comparison.summaries if s.kind == "one_cycle")
schedule = OneCycle(max_lr=one_cycle.selected["max_lr"])
targets = (1.0, 4.0) if QUICK else (0.5, 1.0, 2.0, 4.0, 8.0)
frontier = []
for target in targets:
    solved = dpplan.solve_noise_multiplier(plan, target_epsilon=target, method="prv")
    record = train(solved, schedule, options, task=task).records[-1]
    epsilon = min(record.epsilons.values())
    assert epsilon <= target, (target, record.epsilons)
    frontier.append((target, solved.noise_multiplier, epsilon, record.test_accuracy))
    print(
        f"target ε {target:g}: σ = {solved.noise_multiplier:.3f}, ε reached "
        f"{epsilon:.3f}, test accuracy {record.test_accuracy:.2%}"
    )

fig, ax = plt.subplots()
ax.plot([f[2] for f in frontier], [f[3] for f in frontier], marker="o")
for target, sigma, epsilon, accuracy in frontier:
    ax.annotate(f"σ={sigma:.2f}", (epsilon, accuracy), textcoords="offset points", xytext=(4, -12))
ax.set_xscale("log")
ax.set_xticks([f[2] for f in frontier], [f"{f[2]:.2g}" for f in frontier])
ax.minorticks_off()
ax.set_xlabel("ε after training (upper bound, log scale)")
ax.set_ylabel("final test accuracy")
ax.set_title(f"{task.name}: the frontier ({schedule.max_lr:g} peak lr, one seed per point)")
plt.show()
low, high = frontier[0], frontier[-1]
display(
    Markdown(
        f"From ε = {low[2]:.3f} (σ = {low[1]:.3f}) to ε = {high[2]:.3f} (σ = {high[1]:.3f}) "
        f"the final test accuracy goes from {low[3]:.2%} to {high[3]:.2%}, one seed per "
        "point"
        + (
            f"; for scale, the selected one-cycle rate's final test accuracy varied by "
            f"± {one_cycle.accuracy_std[-1]:.2%} (sample std) over {len(seeds)} seeds at ε = "
            f"{one_cycle.epsilons[-1]:.3f}."
            if len(seeds) > 1
            else " (a single seed: no spread measured in quick mode)."
        )
    )
)
