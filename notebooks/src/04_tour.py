# %% [markdown]
# # 04 · dpplan in ten minutes: plan → ε curve → solve → train → report
#
# You want to train a model with DP-SGD and state an (ε, δ) guarantee you can defend. dpplan
# answers the questions in the order you meet them:
#
# 1. **Plan**: what exactly will training do? (dataset size, batch, noise, epochs, δ)
# 2. **ε curve**: what guarantee does that plan give after every epoch, by three accountants?
# 3. **Solve**: what noise (or how many epochs, or what batch) meets my target ε?
# 4. **Train**: what accuracy does that ε buy? (DP-SGD on MNIST, exactly the plan accounted)
# 5. **Report**: write the guarantee down so others can check it.
#
# Everything below uses `import dpplan`, `dpplan.train` and `dpplan.report` only.

# %% tags=["parameters"]
QUICK = False  # True: 2,000 examples, 1 epoch, CPU (the test suite runs this)

# %%
import datetime
import html
import platform
import tempfile
import warnings

import matplotlib

matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import torch  # only to name the device below
from IPython.display import HTML, Markdown, display

import dpplan

plt.rcParams.update(
    {
        "figure.dpi": 80,
        "figure.figsize": (7.5, 3.6),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
DEVICE = "cpu" if QUICK else "auto"
GPU = not QUICK and torch.cuda.is_available()
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

# %% [markdown]
# ## 1. A plan
#
# A `TrainingPlan` is everything that determines ε: N records, the expected batch B (each
# record is in each batch with probability q = B/N: Poisson sampling), the noise multiplier
# σ (noise std ÷ clipping norm), the epochs and δ. It is validated when built.

# %%
plan = dpplan.TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=20, delta=1e-5
)
print(plan)
print(
    f"q = {plan.sample_rate:.5f}, {plan.steps_per_epoch} steps per epoch, "
    f"{plan.total_steps} steps in all"
)

try:
    dpplan.TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=20, delta=2.0
    )
except dpplan.PlanError as error:
    print("Refused:", error)

# %% [markdown]
# ## 2. ε after every epoch, three ways
#
# `dpplan.compare` runs the three accountants; each curve is an upper bound at every epoch,
# and the headline is the smallest. PRV also gives a lower bound: the true ε lies in the
# shaded band or below the other curves, never below the band.

# %%
comparison = dpplan.compare(plan)
fig, ax = plt.subplots()
for curve in comparison.curves:
    if curve.method == "prv":
        ax.fill_between(
            curve.epochs,
            curve.lower,
            curve.epsilons,
            color="C1",
            alpha=0.35,
            label="PRV (lower–upper)",
        )
    else:  # explicit colours: the PRV band is orange, so no line may be
        color, style = {"rdp": ("C0", "-"), "pld": ("C2", "--")}[curve.method]
        ax.plot(curve.epochs, curve.epsilons, color=color, ls=style, label=curve.method.upper())
ax.set(xlabel="epoch", ylabel="ε at δ = 1e-5", title="ε after every epoch")
ax.legend()
plt.show()
DELTA = f"{plan.delta:.0e}".replace("e-0", "e-")  # 1e-5
display(
    Markdown(
        f"Headline: ε = {comparison.headline_epsilon:.3f} at δ = {DELTA} "
        f"({comparison.headline_method.upper()}, the smallest upper bound). RDP says "
        f"{comparison.curve('rdp').epsilon:.3f}: the same training, a looser bound."
    )
)

# %% [markdown]
# ## 3. Solve for a target
#
# Solvers return a new plan that meets the target under the chosen method, never exceeding it.

# %%
target = 1.0
quieter = dpplan.solve_noise_multiplier(plan, target_epsilon=target, method="pld")
shorter = dpplan.solve_epochs(plan, target_epsilon=target, method="pld")
smaller = dpplan.solve_batch_size(plan, target_epsilon=target, method="pld")
display(
    Markdown(
        f"For ε ≤ {target} at δ = {DELTA} (PLD), keep everything else and either\n\n"
        f"* raise σ from {plan.noise_multiplier} to **{quieter.noise_multiplier:.3f}** "
        f"(ε = {dpplan.epsilon(quieter, method='pld'):.3f}),\n"
        f"* train **{shorter.epochs}** epochs instead of {plan.epochs} "
        f"(ε = {dpplan.epsilon(shorter, method='pld'):.3f}), or\n"
        f"* shrink the batch from {plan.batch_size} to **{smaller.batch_size}** "
        f"(ε = {dpplan.epsilon(smaller, method='pld'):.3f})."
    )
)

# %% [markdown]
# ## 4. Train: what accuracy does an ε buy?
#
# `dpplan.train.train` trains a plan with DP-SGD on MNIST in memory (nothing stored): batches
# are Poisson-sampled at q for exactly `steps_per_epoch` steps per epoch, every example's
# gradient is clipped to C and the sum gets N(0, σ²C²) noise, so the run is the plan
# accounted. The plan's `dataset_size` must be the training-set size of the run options (here
# a subset, so this cell runs in seconds; MNIST comes from `$DPPLAN_DATA_DIR` or is
# downloaded). We solve σ for ε = 1 on that plan and train it with a one-cycle schedule.

# %%
from dpplan.train import OneCycle, RunOptions, train, training_set_size

if QUICK:
    options = RunOptions(device=DEVICE, subset=2_000, validation_size=500, test_subset=1_000)
    small = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=64,
        noise_multiplier=1.0,
        epochs=1,
        delta=1e-5,
    )
else:
    options = RunOptions(device=DEVICE, subset=None if GPU else 20_000, validation_size=5_000)
    small = dpplan.TrainingPlan(
        dataset_size=training_set_size(options),
        batch_size=256,
        noise_multiplier=1.0,
        epochs=3,
        delta=1e-5,
    )
small = dpplan.solve_noise_multiplier(small, target_epsilon=1.0, method="prv")
run = train(
    small,
    OneCycle(max_lr=0.5),
    options,
    on_epoch=lambda r: print(
        f"epoch {r.epoch}: ε = {r.epsilon:.3f}, test accuracy {r.test_accuracy:.1%}"
    ),
)
print(
    f"{run.status} on {run.device} with the {run.engine} engine; "
    f"{run.records[-1].steps} steps = {small.total_steps} planned"
)

# %%
fig, ax = plt.subplots()
ax.plot(
    [r.epsilon for r in run.records],
    [r.test_accuracy for r in run.records],
    "o-",
    label="test accuracy",
)
ax.plot(
    [r.epsilon for r in run.records],
    [r.validation_accuracy for r in run.records],
    "s--",
    label="validation accuracy",
)
ax.set(
    xlabel="ε after the epoch (PRV)",
    ylabel="accuracy",
    ylim=(0, 1),
    title=f"{small.dataset_size:,} MNIST images, σ = {small.noise_multiplier:.2f}, "
    f"B = {small.batch_size}",
)
ax.legend()
plt.show()
display(
    Markdown(
        f"{run.records[-1].test_accuracy:.1%} test accuracy at ε = {run.records[-1].epsilon:.3f}; "
        f"Opacus' own RDP accountant, counting the same steps, says "
        f"{run.records[-1].epsilon_opacus:.3f}. Notebooks 02 and 03 compare schedules and "
        "architectures this way, at equal ε."
    )
)

# %% [markdown]
# ## 5. Report: state the guarantee so others can check it
#
# `start_run` trains like `train` but stores the run (SQLite under `$DPPLAN_HOME`, here a
# temporary folder) so it can be resumed and reported. `build_run_report` gathers the
# guarantee, the mechanism, ε by every method after every epoch, ε without the Poisson
# assumption, accuracy against ε, a membership-inference bound and how to regenerate it; the
# same report renders as Markdown, self-contained HTML (below), PDF or JSON.

# %%
from dpplan.report import build_run_report, to_html, to_markdown
from dpplan.train import RunStore, start_run

store = RunStore(tempfile.mkdtemp(prefix="dpplan-notebook-04-"))
stored = start_run(small, OneCycle(max_lr=0.5), options, store=store)
report = build_run_report(store, stored.id, title="DP-SGD on MNIST: the tour's run")
page = to_html(report)
with warnings.catch_warnings():  # IPython suggests IFrame, which cannot take a srcdoc
    warnings.simplefilter("ignore")
    display(
        HTML(
            f'<iframe srcdoc="{html.escape(page)}" style="width: 100%; height: 720px; '
            'border: 1px solid #ccc"></iframe>'
        )
    )
# The iframe keeps the report's stylesheet away from the notebook's; where a viewer strips
# iframes (GitHub, untrusted notebooks), the Markdown rendering of its summary follows.
display(Markdown(to_markdown(report).split("\n## ")[0]))
again = stored.records[-1].test_accuracy
display(
    Markdown(
        f"The stored run trains the same plan and schedule again (fresh sampling and noise): "
        f"{again:.1%} test accuracy, against {run.records[-1].test_accuracy:.1%} in section 4, "
        f"a difference of {abs(again - run.records[-1].test_accuracy) * 100:.1f} points. One run's "
        "accuracy varies this much from run to run, so a comparison of two set-ups needs several "
        "seeds and an interval: notebooks 02 and 03 use 5 seeds and a 95% Welch t interval "
        "(`dpplan.stats.mean_difference`)."
    )
)

# %% [markdown]
# ## Where next
#
# * The same steps on the command line: `dpplan epsilon`, `dpplan solve`, `dpplan train`,
#   `dpplan compare`, `dpplan report` (see the README).
# * The planner app: `dpplan app` (plan, solve, train, compare and report in a browser).
# * Notebook 01 re-accounts published ε; 02 and 03 re-run two published experiments at
#   equal ε.
