"""dpplan.opacus.LedgerAccountant: a budget guard inside a real Opacus loop (issue 20 §5)."""

from __future__ import annotations

import subprocess
import sys

import dp_accounting
import pytest

torch = pytest.importorskip("torch")
opacus = pytest.importorskip("opacus")
from opacus.utils.batch_memory_manager import BatchMemoryManager

import dpplan
from dpplan.opacus import LedgerAccountant, ledger_from_history

N, DELTA = 64, 1e-5


def _private(ledger, *, batch_size=16, noise_multiplier=1.0):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(N, 5), torch.randint(0, 2, (N,)))
    model = torch.nn.Linear(5, 2)
    engine = opacus.PrivacyEngine()
    engine.accountant = LedgerAccountant(ledger)
    model, optimizer, loader = engine.make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        data_loader=torch.utils.data.DataLoader(data, batch_size=batch_size),
        noise_multiplier=noise_multiplier,
        max_grad_norm=1.0,
    )
    return engine, model, optimizer, loader


def _rdp(q, sigma, steps):
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    return accountant.compose(event, steps).get_epsilon(DELTA)


def test_the_guard_stops_opacus_before_the_refused_update():
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA, budget=8.0, methods=("rdp",))
    engine, model, optimizer, loader = _private(ledger)
    q = 1 / len(loader)  # Opacus' sample rate
    fit = ledger.remaining_steps(noise_multiplier=1.0, sample_rate=q)
    assert 0 < fit < 40
    criterion = torch.nn.CrossEntropyLoss()
    updates, refused = 0, None
    for _ in range(20):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            before = [p.detach().clone() for p in model.parameters()]
            try:
                optimizer.step()
            except dpplan.BudgetExhausted as exc:
                refused = exc
                after = list(model.parameters())
                assert all(torch.equal(b, a) for b, a in zip(before, after))
                break
            updates += 1
            assert any(not torch.equal(b, a) for b, a in zip(before, model.parameters()))
        if refused is not None:
            break
    assert refused is not None and refused.remaining_steps == 0
    assert updates == fit == len(engine.accountant) == ledger.total_steps
    assert ledger.records[0].sample_rate == q and ledger.records[0].noise_multiplier == 1.0
    assert engine.get_epsilon(DELTA) == ledger.epsilon() <= 8.0
    assert ledger.epsilon("rdp") == pytest.approx(_rdp(q, 1.0, fit), rel=1e-12)
    assert _rdp(q, 1.0, fit + 1) > 8.0  # the refused step really was over budget
    # At another δ the recorded steps are accounted at that δ.
    assert engine.get_epsilon(1e-3) < engine.get_epsilon(DELTA)


def test_virtual_steps_count_one_step_per_noisy_update():
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA)
    engine, model, optimizer, loader = _private(ledger, batch_size=32)
    q = 1 / len(loader)
    criterion = torch.nn.CrossEntropyLoss()
    physical = 0
    with BatchMemoryManager(
        data_loader=loader, max_physical_batch_size=4, optimizer=optimizer
    ) as memory_safe_loader:
        for x, y in memory_safe_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
            physical += 1
    updates = len(loader)  # logical batches: the noisy updates
    assert physical > updates
    assert ledger.total_steps == updates
    assert ledger.records == (
        dpplan.ledger.LedgerRecord(noise_multiplier=1.0, sample_rate=q, steps=updates),
    )
    assert engine.get_epsilon(DELTA) == ledger.epsilon()


def test_shuffled_batches_with_accumulation_are_recorded_without_amplification():
    # Opacus accumulates batches only without Poisson sampling, and would then account the
    # shuffled batches as if Poisson; the ledger records them as shuffled.
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(N, 5), torch.randint(0, 2, (N,)))
    model = torch.nn.Linear(5, 2)
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA)
    engine = opacus.PrivacyEngine()
    engine.accountant = LedgerAccountant(ledger, sampling="shuffle", batch_size=16)
    model, optimizer, loader = engine.make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        data_loader=torch.utils.data.DataLoader(data, batch_size=16, shuffle=True),
        noise_multiplier=2.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
    )
    criterion = torch.nn.CrossEntropyLoss()
    batches = iter(loader)
    for _ in range(2):  # two noisy updates, each accumulating two batches: one epoch
        optimizer.zero_grad()
        for _ in range(2):
            x, y = next(batches)
            criterion(model(x), y).backward()
        optimizer.step()
    assert ledger.records == (
        dpplan.ledger.LedgerRecord(
            noise_multiplier=2.0, sample_rate=32 / N, steps=2, batch_size=32, sampling="shuffle"
        ),
    )
    # One epoch: each example was in one noisy update, a Gaussian mechanism with σ = 2.
    exact = dp_accounting.get_epsilon_gaussian(2.0, DELTA)
    assert exact <= engine.get_epsilon(DELTA) <= exact * (1 + 1e-3)
    assert ledger.as_if_poisson_epsilon("rdp") < ledger.epsilon("rdp")


def test_opacus_history_imports_into_a_ledger():
    accountant = opacus.accountants.RDPAccountant()
    for _ in range(30):
        accountant.step(noise_multiplier=1.2, sample_rate=0.05)
    for _ in range(10):
        accountant.step(noise_multiplier=2.0, sample_rate=0.1)
    ledger = ledger_from_history(accountant.history, dataset_size=1000, delta=DELTA)
    assert ledger.total_steps == 40
    library = dp_accounting.rdp.RdpAccountant(orders=list(dpplan.get_accountant("rdp").orders))
    library.compose(
        dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.GaussianDpEvent(1.2)), 30
    )
    library.compose(
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(2.0)), 10
    )
    assert ledger.epsilon("rdp") == pytest.approx(library.get_epsilon(DELTA), rel=1e-12)
    # Opacus' own RDP (a coarser order grid) is no tighter than dpplan's headline.
    assert ledger.epsilon() <= accountant.get_epsilon(DELTA)


def test_checkpoint_round_trip_through_opacus_state_dict():
    ledger = dpplan.Ledger(dataset_size=N, delta=DELTA, budget=5.0, methods=("rdp",))
    accountant = LedgerAccountant(ledger)
    accountant.step(noise_multiplier=1.5, sample_rate=0.25)
    state = accountant.state_dict()
    fresh = LedgerAccountant(dpplan.Ledger(dataset_size=N, delta=DELTA))
    fresh.load_state_dict(state)
    assert fresh.ledger.to_dict() == ledger.to_dict() and fresh.history == [(1.5, 0.25, 1)]


def test_importing_dpplan_opacus_does_not_load_opacus_until_used():
    code = "import sys, dpplan.opacus; print(sorted(m for m in ('torch', 'opacus') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
