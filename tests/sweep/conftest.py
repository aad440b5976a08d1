"""Fixtures for the sweep tests: tiny MNIST options, a temp store, an embedded Ray per module.

Trials train the seed network for one epoch on 2,000 examples (fused engine, CPU), so a
whole sweep takes seconds; Ray starts once per module that asks for it, with 2 CPUs, and is
shut down at the end of the module.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_options(mnist_dir):  # mnist_dir: tests/conftest.py
    from dpplan.train import RunOptions

    return RunOptions(
        subset=2000,
        validation_size=500,
        test_subset=500,
        device="cpu",
        data_dir=str(mnist_dir),
        download=False,
        engine="fused",
    )


@pytest.fixture
def one_trial_spec(tiny_options):
    """A sweep of one trial: ε 2, B 256, one epoch, one-cycle at 0.5, seed 0."""
    from dpplan.sweep import SweepSpec

    return SweepSpec(
        target_epsilons=(2,),
        delta=1e-5,
        batch_sizes=(256,),
        epochs=(1,),
        schedules=("one_cycle",),
        one_cycle_lrs=(0.5,),
        seeds=(0,),
        options=tiny_options,
    )


@pytest.fixture
def store(tmp_path, monkeypatch):
    from dpplan.store import RunStore

    monkeypatch.setenv("DPPLAN_HOME", str(tmp_path / "home"))
    return RunStore(tmp_path / "home")


@pytest.fixture(scope="module")
def ray_cluster():
    """An embedded Ray with 2 CPUs for this module; shut down afterwards."""
    ray = pytest.importorskip("ray", reason='Ray is the [sweep] extra: pip install -e ".[sweep]"')
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Train in-process trials on one thread (as Ray's workers do)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
