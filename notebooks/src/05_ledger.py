# %% [markdown]
# # 05 · Accounting your own training loop: phases, a ledger, and a budget guard
#
# Most DP-SGD runs are not one fixed recipe: the batch size or the noise changes between
# phases, training stops early, and the loop is the user's own. This notebook shows the three
# tools dpplan has for that, each checked against the libraries in the test suite:
#
# * a **`PhasedPlan`**: phases with their own batch size and σ, ε after any step;
# * a **`Ledger`** that a plain PyTorch loop records into, with a **budget** that refuses the
#   step that would exceed it, before the update is applied;
# * the same guard inside **Opacus**, through `dpplan.opacus.LedgerAccountant`.
#
# Every ε is an upper bound at δ for add-or-remove-one neighbours. The data are synthetic
# (no MNIST needed); the sentences comparing numbers are written from the numbers.

# %% tags=["parameters"]
QUICK = False  # True: shorter loops (the test suite runs this)

# %%
import datetime
import platform
import warnings

import matplotlib

matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import opacus
import torch
from IPython.display import Markdown, display

import dpplan
from dpplan.opacus import LedgerAccountant

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
# ## A phased plan
#
# A warm-up phase with small, noisy batches, then larger batches with less noise. The curve
# runs on across the phases; a phase may stop mid-epoch, and ε is readable after any step.

# %%
warmup = dpplan.TrainingPlan(
    dataset_size=60000, batch_size=256, noise_multiplier=1.5, epochs=2, delta=1e-5
)
main = warmup.replace(batch_size=1024, noise_multiplier=1.1, epochs=3 if QUICK else 8)
phased = dpplan.PhasedPlan(phases=[warmup, main])
comparison = dpplan.compare(phased, methods=("rdp", "pld"))
single = dpplan.compare(main.replace(epochs=warmup.epochs + main.epochs), methods=("rdp", "pld"))
figure, axes = plt.subplots()
for curve in comparison.curves:
    axes.plot(curve.epochs, curve.epsilons, marker="o", label=f"phased, {curve.method}")
for curve in single.curves:
    axes.plot(curve.epochs, curve.epsilons, ls="--", label=f"main phase only, {curve.method}")
axes.axvline(warmup.epochs + 0.5, color="grey", lw=1)
axes.set(xlabel="epoch (across phases)", ylabel="ε upper bound at δ = 1e-5")
axes.legend()
plt.show()
stopped = dpplan.epsilon_at(phased, steps=warmup.total_steps + 123, method="pld")
display(
    Markdown(
        f"After all {phased.total_steps:,} steps the phased plan costs ε = "
        f"{comparison.headline_epsilon:.3f} ({comparison.headline_method}); the main phase "
        f"alone for as many epochs costs {single.headline_epsilon:.3f}, so the warm-up "
        f"{'costs' if comparison.headline_epsilon > single.headline_epsilon else 'saves'} "
        f"{abs(comparison.headline_epsilon - single.headline_epsilon):.3f}. Stopping 123 steps "
        f"into the second phase: ε = {stopped:.3f} (PLD)."
    )
)

# %% [markdown]
# ## Your own loop: the ledger is the guard
#
# A plain DP-SGD loop (Poisson batches, per-example clipping, Gaussian noise) on a small
# synthetic task. `ledger.record(...)` runs before each update; at the budget it raises
# `BudgetExhausted` and the model keeps its last parameters.

# %%
torch.manual_seed(0)
N, q, sigma, clip, budget = 1024, 0.05, 2.0, 1.0, 1.5 if QUICK else 3.0
x = torch.randn(N, 20)
y = (x[:, :5].sum(dim=1) > 0).long()
model = torch.nn.Linear(20, 2)
ledger = dpplan.Ledger(dataset_size=N, delta=1e-5, budget=budget)
history = []
stop = None
for step in range(100_000):
    batch = torch.nonzero(torch.rand(N) < q).flatten()
    per_example = torch.func.vmap(
        torch.func.grad(
            lambda params, xi, yi: torch.nn.functional.cross_entropy(
                torch.func.functional_call(model, params, (xi[None],)), yi[None]
            )
        ),
        in_dims=(None, 0, 0),
    )(dict(model.named_parameters()), x[batch], y[batch])
    norms = torch.sqrt(sum((g.flatten(1) ** 2).sum(dim=1) for g in per_example.values()))
    factor = (clip / (norms + 1e-12)).clamp(max=1.0)
    try:
        ledger.record(noise_multiplier=sigma, sample_rate=q)
    except dpplan.BudgetExhausted as exc:
        stop = exc
        break
    with torch.no_grad():
        for name, p in model.named_parameters():
            summed = (per_example[name] * factor.view(-1, *[1] * (p.dim()))).sum(dim=0)
            p -= 0.5 * (summed + sigma * clip * torch.randn_like(p)) / (q * N)
    if step % 10 == 0:
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())
        history.append((ledger.total_steps, ledger.epsilon(), accuracy))

steps, epsilons, accuracies = zip(*history)
figure, left = plt.subplots()
left.plot(steps, epsilons, color="C0", label="ε (ledger headline)")
left.axhline(budget, color="C0", ls=":", label="budget")
left.set(xlabel="noisy steps", ylabel="ε upper bound at δ = 1e-5")
right = left.twinx()
right.plot(steps, accuracies, color="C1", label="training accuracy")
right.set_ylabel("accuracy")
left.legend(loc="lower right")
plt.show()
method, epsilon = ledger.headline()
display(
    Markdown(
        f"The guard stopped the loop after **{ledger.total_steps:,} steps** at ε = "
        f"{epsilon:.4f} ({method}) ≤ budget {budget:g}. It said: *{stop}* "
        f"Exact per method: RDP {ledger.epsilon('rdp'):.4f}, PRV {ledger.epsilon('prv'):.4f}, "
        f"PLD {ledger.epsilon('pld'):.4f}."
    )
)

# %% [markdown]
# ## The same guard inside Opacus
#
# `LedgerAccountant` replaces Opacus' accountant before `make_private`; Opacus calls its hook
# after adding the noise and before the update. The refused step changes no parameter.

# %%
torch.manual_seed(0)
data = torch.utils.data.TensorDataset(x, y)
ledger = dpplan.Ledger(dataset_size=N, delta=1e-5, budget=budget, methods=("rdp", "pld"))
engine = opacus.PrivacyEngine()
engine.accountant = LedgerAccountant(ledger)
opacus_model = torch.nn.Linear(20, 2)
opacus_model, optimizer, loader = engine.make_private(
    module=opacus_model,
    optimizer=torch.optim.SGD(opacus_model.parameters(), lr=0.5),
    data_loader=torch.utils.data.DataLoader(data, batch_size=int(q * N)),
    noise_multiplier=sigma,
    max_grad_norm=clip,
)
unchanged = None
try:
    for epoch in range(1000):
        for features, labels in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(opacus_model(features), labels).backward()
            before = [p.detach().clone() for p in opacus_model.parameters()]
            try:
                optimizer.step()
            except dpplan.BudgetExhausted:
                unchanged = all(
                    torch.equal(b, p) for b, p in zip(before, opacus_model.parameters())
                )
                raise
except dpplan.BudgetExhausted:
    pass
display(
    Markdown(
        f"Opacus was stopped after {len(engine.accountant):,} noisy steps at ε = "
        f"{engine.get_epsilon(1e-5):.4f} (budget {budget:g}); the refused step "
        f"{'changed no parameter' if unchanged else 'CHANGED parameters'}."
    )
)
