"""dpplan train / compare / runs from the command line."""

from __future__ import annotations

import json
import statistics

import pytest
from scipy import stats as scipy_stats
from tiny_runs import stopped_after_one_epoch, stored_run, tiny_options

import dpplan
from dpplan.cli import main
from dpplan.run_policy import run_epsilon
from dpplan.train import Constant, RunOptions, core, start_run
from dpplan.train.data import DATA_DIR_ENV, MIRRORS_ENV, MNIST_FILES

#: Validation accuracy grows with the learning rate, test accuracy with the seed.
STUB_TRAIN = stored_run(lambda lr, seed: lr / 10, lambda lr, seed: 0.5 + seed / 10)

PLAN = ["--batch-size", "64", "--noise-multiplier", "1.0", "--epochs", "1", "--delta", "1e-4"]


def test_train_json_then_runs(store, data_flags, capsys):
    assert (
        main(["train", *PLAN, *data_flags, "--schedule", "plateau", "--lr", "0.1", "--json"]) == 0
    )
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "finished" and run["plan"]["dataset_size"] == 1000
    assert run["records"][0]["steps"] == run["plan"]["steps_per_epoch"]
    assert {"epsilon", "test_accuracy"} <= set(run["records"][0])
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert main(["runs", "show", str(run["id"])]) == 0
    out = capsys.readouterr().out
    assert f"run {run['id']}: finished" in out and "test acc" in out
    assert main(["runs"]) == 0
    assert "finished" in capsys.readouterr().out


def test_train_plain_shows_progress(store, data_flags, capsys, monkeypatch):
    monkeypatch.setattr(core, "PROGRESS_SECONDS", 0.0)  # report every step
    assert main(["train", *PLAN, *data_flags, "--lr", "0.5"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    # First that the run started (id, threads, plan, device, which ε), then steps within the
    # epoch, then the epoch with both ε labelled by their method.
    assert lines[0].startswith("run 1 started on cpu: dataset_size=1000 batch_size=64 ")
    assert lines[0].endswith("ε: the smallest upper bound of rdp, prv and pld; 1 CPU thread")
    steps = 1000 // 64 + (1000 % 64 > 0)  # steps_per_epoch of the plan
    assert lines[1] == f"  epoch 1/1: step 1/{steps}"
    assert "Opacus ε (rdp)=" in lines[-1]
    assert "finished" in captured.out
    assert "ε (smallest bound)  Opacus ε (rdp)" in captured.out  # the summary's columns


def test_one_epsilon_everywhere(store, data_flags, capsys):
    # Issue 17 item 9: the live line said "ε (prv) = 0.6943" while runs and the report said
    # 0.6842 (pld). Every surface now shows the smallest upper bound, named by its method,
    # though the run records --method rdp.
    assert main(["train", *PLAN, *data_flags, "--lr", "0.5"]) == 0
    captured = capsys.readouterr()
    value, method = run_epsilon(store.get_run(1))
    assert method != "rdp"  # PLD or PRV bound RDP from below here
    shown = f"{value:.4f} ({method})"
    assert f"epoch 1/1  ε={shown}" in captured.err  # the live line
    assert shown in captured.out.splitlines()[-1]  # the summary
    assert main(["runs"]) == 0
    assert shown in capsys.readouterr().out
    assert main(["runs", "show", "1"]) == 0
    assert shown in capsys.readouterr().out
    assert main(["report", "--run", "1", "--format", "json"]) == 0
    last = json.loads(capsys.readouterr().out)["run"]["epochs"][-1]
    assert (last["epsilon"], last["method"]) == (value, method)


def test_train_resume_reads_data_dir_or_env(store, mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    options = tiny_options(mnist_dir)
    stopped = stopped_after_one_epoch(store, options)
    run_id = str(stopped.id)
    given, from_env = tmp_path / "given", tmp_path / "from-env"
    assert main(["train", "--resume", run_id, "--data-dir", str(given)]) == 2
    assert f"{str(given)!r} does not exist" in capsys.readouterr().err
    monkeypatch.setenv(DATA_DIR_ENV, str(from_env))
    assert main(["train", "--resume", run_id]) == 2
    assert f"{str(from_env)!r} does not exist" in capsys.readouterr().err
    assert not given.exists() and not from_env.exists()
    assert main(["train", "--resume", run_id, "--data-dir", str(mnist_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"run {run_id} resuming after epoch 1 on cpu: ")
    assert "epoch 2/2  ε=" in captured.err
    assert f"run {run_id}: finished" in captured.out


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--model", "vgg"], "invalid choice: 'vgg'"),
        (["--schedule", "cosine"], "invalid choice"),
        (["--lr", "0"], "lr=0"),
        (["--lr", "nan"], "lr=nan"),
        (["--seed", "x"], "seed='x'"),
        (["--batch-size", "5000"], "batch_size=5000"),
    ],
)
def test_train_bad_input_exits_2_and_stores_nothing(store, data_flags, capsys, flags, field):
    assert main(["train", *PLAN, *data_flags, *flags]) == 2
    assert field in capsys.readouterr().err
    assert store.list_runs() == []


def test_train_mistyped_data_dir_exits_2_and_leaves_nothing(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV, "http://127.0.0.1:9/never/")
    typo = tmp_path / "mnsit"
    argv = [
        "train",
        *PLAN,
        "--subset",
        "1200",
        "--validation-size",
        "200",
        "--device",
        "cpu",
        "--data-dir",
        str(typo),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: MNIST data folder {str(typo)!r} does not exist")
    assert all(name in err for name in MNIST_FILES) and "could not download" not in err
    assert not typo.exists()
    assert store.list_runs() == []  # an input error records no run


def test_compare_small_grid_orchestration(store, data_flags, capsys, monkeypatch):
    monkeypatch.setattr("dpplan.train.compare.start_run", STUB_TRAIN)
    argv = [
        "compare",
        *PLAN,
        *data_flags,
        "--one-cycle-lrs",
        "0.5,1",
        "--plateau-lrs",
        "0.1,0.3",
        "--seeds",
        "0,1",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs_tried"] == 2 + 2 + 2  # grid runs + repeats with the second seed
    assert [s["kind"] for s in result["schedules"]] == ["one_cycle", "plateau"]
    one_cycle, plateau = result["schedules"]
    # Each schedule's rate is selected on validation accuracy (here: the largest rate) ...
    assert one_cycle["selected"]["max_lr"] == 1.0 and plateau["selected"]["lr"] == 0.3
    # ... then repeated with the other seed; the test accuracy is averaged over seeds.
    assert one_cycle["accuracy_mean"] == [pytest.approx(0.55)]
    assert one_cycle["accuracy_std"] == [pytest.approx(statistics.stdev([0.5, 0.6]))]  # n - 1
    assert one_cycle["final_values"] == [pytest.approx(0.5), pytest.approx(0.6)]
    # The final-epoch means are compared by a 95% Welch t interval: equal arms, 2 vs 2 seeds
    # (se = the sample std here, 2 degrees of freedom): too wide to tell.
    (difference,) = result["differences"]
    half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev([0.5, 0.6])
    assert (difference["a"], difference["b"], difference["verdict"]) == (
        "one_cycle",
        "plateau",
        "cannot tell",
    )
    assert difference["difference"] == pytest.approx(0.0, abs=1e-12)
    assert (difference["low"], difference["high"]) == (pytest.approx(-half), pytest.approx(half))
    assert one_cycle["epsilons"] == plateau["epsilons"]  # compared at equal ε
    assert "not covered" in result["tuning_note"]
    runs = store.list_runs()
    assert len(runs) == 6 and len({run.group_id for run in runs}) == 1
    assert main([arg for arg in argv if arg != "--json"]) == 0
    out = capsys.readouterr().out
    assert "  epoch  ε (smallest bound)   test acc (mean ± sample std over 2 seeds)" in out
    assert "one_cycle − plateau, test accuracy at the final epoch: cannot tell (+0.0 points" in out
    assert " (rdp)   " in out  # records without every method: the recorded one, named


@pytest.mark.slow
def test_compare_small_grid(store, data_flags, capsys):
    argv = [
        "compare",
        *PLAN,
        *data_flags,
        "--one-cycle-lrs",
        "0.5,1",
        "--plateau-lrs",
        "0.1",
        "--seeds",
        "0,1",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs_tried"] == 2 + 1 + 2  # grid runs + repeats with the second seed
    kinds = [s["kind"] for s in result["schedules"]]
    assert kinds == ["one_cycle", "plateau"]
    for summary in result["schedules"]:
        assert len(summary["run_ids"]) == 2 and len(summary["accuracy_mean"]) == 1
        # Compared at equal ε: both schedules share the plan's curve.
        assert summary["epsilons"] == result["schedules"][0]["epsilons"]
    assert "not covered" in result["tuning_note"]
    assert len(store.list_runs()) == 5


def test_runs_unknown_id_exits_2(store, capsys):
    assert main(["runs", "show", "42"]) == 2
    assert "run_id=42" in capsys.readouterr().err


def test_a_first_epoch_over_the_target_exits_3_with_the_noise_that_fits(store, data_flags, capsys):
    # Issue 17 item 10: such a run trained nothing, was stored as finished and exited 0.
    flags = [*PLAN, *data_flags, "--lr", "0.5", "--target-epsilon", "0.5", "--epochs", "2"]
    assert main(["train", *flags]) == 3
    err = capsys.readouterr().err
    assert "error: run 1 stopped before epoch 1: its ε=" in err
    assert "would exceed target_epsilon=0.5; nothing was trained (stored as not_started)" in err
    run = store.get_run(1)
    assert run.status == "not_started" and run.records == ()
    solved = dpplan.solve_noise_multiplier(run.plan, target_epsilon=0.5, method="rdp")
    assert f"--noise-multiplier {solved.noise_multiplier:.4g} fits all 2 epoch(s)" in err
    assert dpplan.epsilon(solved, method="rdp") <= 0.5
    assert main(["train", *flags, "--json"]) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "InfeasibleTargetError" and "not_started" in error["message"]
    assert main(["runs"]) == 0
    assert "not_started" in capsys.readouterr().out


def test_resume_refuses_flags_that_differ_from_the_run(store, mnist_dir, capsys):
    # Issue 17 item 12: flags given with --resume were silently ignored.
    run = stopped_after_one_epoch(store, tiny_options(mnist_dir))
    resume_flags = ["train", "--resume", str(run.id)]
    differing = [
        "--lr", "0.5", "--epochs", "3", "--engine", "opacus", "--schedule", "plateau",
        "--seed", "4", "--non-private", "--method", "pld",
    ]  # fmt: skip
    assert main([*resume_flags, *differing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: epochs=3 is invalid: must be run 1's own 2")
    for text in (
        "--lr 0.5 (run 1 has 0.2)",
        "--epochs 3 (run 1 has 2)",
        "--engine opacus (run 1 has fused)",
        "--schedule plateau (run 1 has constant)",
        "--seed 4 (run 1 has 0)",
        "--non-private True (run 1 has False)",
        "--method pld (run 1 has rdp)",
        "only --data-dir and --threads may change",
    ):
        assert text in err
    assert store.get_run(run.id).status == "stopped"  # nothing was resumed
    # Flags equal to the stored run, the data folder and the threads may be given.
    same = ["--lr", "0.2", "--epochs", "2", "--batch-size", "64", "--schedule", "constant"]
    flags = [*resume_flags, *same, "--data-dir", str(mnist_dir), "--threads", "2", "--json"]
    assert main(flags) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["status"] == "finished" and len(resumed["records"]) == 2
    assert resumed["options"]["threads"] == 2  # threads changed on resume, and recorded


def test_threads_reach_torch_and_the_stored_options(store, data_flags, capsys, monkeypatch):
    import torch

    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    assert main(["train", *PLAN, *data_flags, "--lr", "0.5", "--threads", "2", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["options"]["threads"] == 2 and 2 in seen
    real(1)
    assert main(["train", *PLAN, *data_flags, "--threads", "0"]) == 2
    assert "threads=0 is invalid: must be an integer in [1, 1024]" in capsys.readouterr().err


def test_the_run_records_where_its_data_came_from(store, data_flags, mnist_dir, capsys):
    # Issue 17 item 15: the report listed download=True though a data folder was given.
    assert main(["train", *PLAN, *data_flags, "--lr", "0.5", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    source = f"read from {mnist_dir.resolve()} (nothing downloaded)"
    assert run["options"]["data_source"] == source
    assert main(["runs", "show", str(run["id"])]) == 0
    assert f"data: MNIST {source}" in capsys.readouterr().out
    assert main(["report", "--run", str(run["id"]), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["run"]["options"]
    assert shown["data_source"] == source and "download" not in shown


def test_compare_defaults_are_the_measured_grids_not_the_diverging_peak():
    # Issue 17 item 12: defaults come from what the notebooks measured (15.62 diverges here).
    from dpplan.cli.parser import build_parser
    from dpplan.sweep.spec import DEFAULT_ONE_CYCLE_LRS, DEFAULT_PLATEAU_LRS
    from dpplan.train.compare import DEFAULT_GRIDS

    flags = ["--batch-size", "64", "--noise-multiplier", "1", "--epochs", "1", "--delta", "1e-5"]
    args = build_parser().parse_args(["compare", *flags])
    one_cycle = tuple(float(v) for v in args.one_cycle_lrs)  # typed when parsed
    plateau = tuple(float(v) for v in args.plateau_lrs)
    assert one_cycle == DEFAULT_ONE_CYCLE_LRS and 15.62 not in one_cycle
    assert plateau == DEFAULT_PLATEAU_LRS
    assert tuple(s.max_lr for s in DEFAULT_GRIDS["one_cycle"]) == DEFAULT_ONE_CYCLE_LRS
    assert tuple(s.lr for s in DEFAULT_GRIDS["plateau"]) == DEFAULT_PLATEAU_LRS


# -- --task module:function (issue 21): a user's task module on the Python path ------------

TASK_PLAN = ["--batch-size", "50", "--noise-multiplier", "1.0", "--epochs", "2", "--delta", "1e-4"]


@pytest.fixture
def user_tasks(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "fixtures"))


def _task_flags(engine="fused"):
    return ["--device", "cpu", "--method", "rdp", "--engine", engine, "--lr", "0.5", "--json"]


def test_train_task_with_both_engines_gives_the_same_epsilon_and_the_tasks_size(
    store, user_tasks, capsys
):
    runs = []
    for engine in ("fused", "opacus"):
        argv = ["train", "--task", "user_tasks:blobs", *TASK_PLAN, *_task_flags(engine)]
        assert main(argv) == 0
        runs.append(json.loads(capsys.readouterr().out))
    for run in runs:
        assert run["status"] == "finished" and run["plan"]["dataset_size"] == 400
        assert (run["task"], run["task_spec"]) == ("blobs", "user_tasks:blobs")
        assert run["task_fingerprint"]["train"]["examples"] == 400
        assert [r["steps"] for r in run["records"]] == [8, 16]
    assert [r["epsilon"] for r in runs[0]["records"]] == [r["epsilon"] for r in runs[1]["records"]]
    assert main(["runs", "show", str(runs[0]["id"])]) == 0
    assert "task: blobs (user_tasks:blobs)" in capsys.readouterr().out


def test_train_a_regression_task_shows_its_test_loss(store, user_tasks, capsys):
    argv = ["train", "--task", "user_tasks:regression", *TASK_PLAN, *_task_flags()[:-1]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "task: linear-regression (user_tasks:regression)" in out
    assert "test loss after epoch 2: " in out and "test_mae after epoch 2: " in out
    assert "data: MNIST" not in out


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_xyz:blobs", "no module named 'no_such_module_xyz'"),
        ("user_tasks:missing", "has no attribute 'missing'"),
        ("user_tasks:not_a_task", "returned a dict"),
        ("user_tasks:batchnorm", "BatchNorm1d at '1'"),
    ],
)
def test_train_refuses_a_bad_task_with_exit_2_naming_it(store, user_tasks, capsys, spec, words):
    assert main(["train", "--task", spec, *TASK_PLAN, *_task_flags()[:-1]]) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("error: ")
    assert store.list_runs() == []


def test_resume_on_other_data_exits_2_naming_both_fingerprints(store, user_tasks, capsys):
    from dpplan.train import load_task

    task = load_task("user_tasks:blobs")
    ids = []
    run = start_run(
        task.plan(batch_size=50, noise_multiplier=1.0, epochs=2, delta=1e-4),
        Constant(lr=0.3),
        RunOptions(device="cpu", method="rdp"),
        store=store,
        task=task,
        on_start=lambda r: ids.append(r.id),
        on_epoch=lambda r: store.request_stop(ids[0]),
    )
    assert run.status == "stopped"
    other = load_task("user_tasks:blobs_other_data").fingerprint()["train_sha256"][:16]
    assert main(["train", "--resume", str(run.id), "--task", "user_tasks:blobs_other_data"]) == 2
    err = capsys.readouterr().err
    assert other in err and task.fingerprint()["train_sha256"][:16] in err
    assert main(["train", "--resume", str(run.id), "--json"]) == 0  # its own task, imported
    assert json.loads(capsys.readouterr().out)["status"] == "finished"


def test_compare_a_regression_task_reports_test_loss(store, user_tasks, capsys):
    argv = [
        "compare",
        "--task",
        "user_tasks:regression",
        *TASK_PLAN,
        "--one-cycle-lrs",
        "0.5",
        "--plateau-lrs",
        "0.5",
        "--seeds",
        "0",
        "--device",
        "cpu",
        "--method",
        "rdp",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("test loss (1 seed: no spread measured)") == 2
    assert "too few seeds for an interval" in out  # one seed a side: no interval, no verdict
    assert all(run.task == "linear-regression" for run in store.list_runs())
