"""The background driver the app launches: it receives a validated SweepSpec (as JSON), never
spelled argv, and runs it as ``dpplan sweep`` would (issue 19 item 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import pytest

from dpplan.errors import MissingDependencyError, PlanError
from dpplan.sweep import LocalExecutor, SweepSpec, background


def test_launch_refuses_anything_but_a_spec(store):
    with pytest.raises(PlanError, match="spec="):
        background.launch_sweep(["--epsilons", "1,3"])
    assert not (store.home / "sweeps").exists()


def test_launch_without_ray_names_the_extra_and_starts_nothing(store, one_trial_spec):
    with (
        mock.patch("importlib.util.find_spec", return_value=None),
        mock.patch("subprocess.Popen") as popen,
        pytest.raises(MissingDependencyError, match=r"\[sweep\]"),
    ):
        background.launch_sweep(one_trial_spec)
    popen.assert_not_called()


def test_launch_hands_the_child_the_spec_as_json(store, one_trial_spec):
    spec = one_trial_spec
    with mock.patch("subprocess.Popen") as popen:
        popen.return_value.pid = 4242
        pid, log = background.launch_sweep(spec)
    command = popen.call_args.args[0]
    assert pid == 4242 and command[:3] == [sys.executable, "-m", "dpplan.sweep.background"]
    [spec_file] = command[3:]
    assert SweepSpec.from_dict(json.loads(Path(spec_file).read_text())) == spec
    assert log.parent == store.home / "sweeps" and popen.call_args.kwargs["start_new_session"]


def test_the_child_runs_the_spec_and_prints_its_frontier(store, one_trial_spec, tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(one_trial_spec.to_dict()))
    # The child runs on Ray; here its trials run in this process instead (same driver).
    with mock.patch("dpplan.sweep.ray_executor.RayExecutor", lambda: LocalExecutor()):
        assert background.main([str(spec_file)]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result["trials"]["finished"] == 1 and len(result["points"]) == 1
    [sweep] = store.list_sweeps()
    assert sweep.status == "finished" and SweepSpec.from_dict(sweep.spec) == one_trial_spec


def test_the_child_refuses_a_bad_spec_naming_the_field(store, one_trial_spec, tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    bad = {**one_trial_spec.to_dict(), "target_epsilons": [0]}
    spec_file.write_text(json.dumps(bad))
    assert background.main([str(spec_file)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: target_epsilon=0 is invalid")
    assert store.list_sweeps() == []
