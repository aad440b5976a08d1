"""The public surface (STYLE §3.9 item 10): ``__all__`` imports, and imports stay light.

``import dpplan`` must not load torch, opacus or streamlit (only ``dpplan.train`` and the app
may), and asking for the RDP backend must not load prv-accountant. Both are checked in a fresh
interpreter, through ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dpplan

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "opacus", "streamlit")


def test_all_has_no_duplicates():
    assert len(dpplan.__all__) == len(set(dpplan.__all__))


@pytest.mark.parametrize("name", dpplan.__all__)
def test_every_name_in_all_imports(name):
    namespace: dict[str, object] = {}
    exec(f"from dpplan import {name}", namespace)  # noqa: S102 - the import itself is the test
    assert namespace[name] is getattr(dpplan, name)


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from dpplan import *", namespace)  # noqa: S102
    assert set(namespace) - {"__builtins__"} == set(dpplan.__all__)


def test_version_is_a_string():
    assert isinstance(dpplan.__version__, str) and dpplan.__version__.count(".") >= 1


def test_documented_names_are_the_real_objects():
    from dpplan import accounting, errors, plan, solve

    assert dpplan.TrainingPlan is plan.TrainingPlan
    assert dpplan.PlanError is errors.PlanError
    assert dpplan.epsilon is accounting.epsilon
    assert dpplan.solve_epochs is solve.solve_epochs
    assert dpplan.METHODS == ("rdp", "prv", "pld")


@pytest.mark.parametrize(
    "name",
    [
        "PlanError",
        "InfeasibleTargetError",
        "AccountingError",
        "DataError",
        "NotFoundError",
        "StateConflictError",
        "UsageError",
        "MissingDependencyError",
    ],
)
def test_errors_share_the_root_and_a_standard_base(name):
    error = getattr(dpplan, name)
    assert issubclass(error, dpplan.DpplanError)
    standard = {
        "PlanError": ValueError,
        "InfeasibleTargetError": ValueError,
        "AccountingError": RuntimeError,
        "DataError": OSError,
        "NotFoundError": LookupError,
        "StateConflictError": RuntimeError,
        "UsageError": ValueError,
        "MissingDependencyError": ImportError,
    }[name]
    assert issubclass(error, standard)


NAMES = (*HEAVY, "prv_accountant")

# One fresh interpreter, three snapshots of sys.modules: after `import dpplan`, after an RDP
# query, and after asking for the PRV backend (which must load prv-accountant lazily).
SCRIPT = f"""
import json, sys
snapshots = {{}}
def snap(label):
    snapshots[label] = {{name: name in sys.modules for name in {NAMES!r}}}
import dpplan
snap("import")
plan = dpplan.TrainingPlan(dataset_size=1000, batch_size=10, noise_multiplier=1.0, epochs=1,
                           delta=1e-5)
assert dpplan.get_accountant("rdp").epsilon(plan) > 0
snap("rdp")
dpplan.get_accountant("prv")
snap("prv")
print(json.dumps(snapshots))
"""


@pytest.fixture(scope="module")
def snapshots() -> dict[str, dict[str, bool]]:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_import_dpplan_does_not_import_torch_opacus_or_streamlit(snapshots):
    assert not any(snapshots["import"][name] for name in HEAVY), snapshots["import"]


def test_rdp_backend_does_not_import_prv_accountant(snapshots):
    assert not snapshots["rdp"]["prv_accountant"], snapshots["rdp"]
    assert not any(snapshots["rdp"][name] for name in HEAVY), snapshots["rdp"]


def test_prv_backend_imports_prv_accountant_lazily(snapshots):
    assert snapshots["prv"]["prv_accountant"]
    assert not any(snapshots["prv"][name] for name in HEAVY), snapshots["prv"]


def test_run_specs_are_torch_free():
    # The store, report, app and CLI hold typed schedule specs and RunOptions; importing
    # them must not load torch or opacus.
    code = (
        "import sys\n"
        "from dpplan.train import Constant, OneCycle, Plateau, RunOptions, training_set_size\n"
        "from dpplan.train.specs import schedule_from_dict, ENGINES\n"
        "RunOptions(engine='opacus'); schedule_from_dict(Plateau(lr=0.1).to_dict())\n"
        "print(sorted(m for m in ('torch', 'opacus') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_specs_know_the_accounting_methods():
    from dpplan.train import specs

    assert specs.METHODS is dpplan.METHODS  # the one list, not a copy
