"""The argparse construction for every ``dpplan`` command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dpplan.accounting import METHODS
from dpplan.cli.app_command import cmd_app, validate_port
from dpplan.cli.common import (
    PLAN_FIELDS,
    SOLVE_TARGETS,
    SOLVE_WHAT,
    DefaultsFormatter,
    Parser,
    Typed,
    read_number,
    read_numbers,
    read_run_id,
    read_sweep_id,
)
from dpplan.cli.plan_commands import cmd_epsilon, cmd_solve
from dpplan.cli.report_command import cmd_report
from dpplan.cli.run_commands import cmd_runs
from dpplan.cli.sweep_commands import cmd_frontier, cmd_sweep, cmd_sweeps
from dpplan.cli.train_commands import cmd_compare, cmd_train
from dpplan.commands import PLAN_FLAGS, REPORT_FLAGS, Flag


def _add_plan_flags(
    parser: argparse.ArgumentParser,
    *,
    skip: str | None = None,
    required: str | None = "always",
    or_file: bool = False,
) -> None:
    """Add the plan's flags; ``required`` is "always", or the condition under which they are.

    With ``or_file``, ``--plan FILE`` may replace them (checked by ``plan_or_file``).
    """
    group = parser.add_argument_group(
        (
            "plan (required" + (")" if required == "always" else f" {required})")
            if required
            else "plan"
        )
        + (", or --plan FILE" if or_file else "")
    )
    if or_file:
        required = "unless --plan FILE"
    for flag in PLAN_FLAGS:
        if flag.field != skip:
            _add_flag(group, flag, required=required == "always" and flag.field != "max_grad_norm")


#: Readers of the table's flags whose value is not text (see ``Typed``).
_READERS: dict[str, Callable[[str, str], Any]] = {
    **dict.fromkeys(PLAN_FIELDS, read_number),
    "run": read_run_id,
    "sweep": read_sweep_id,
    "tuning_runs": read_number,
}


def _add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: Flag, **more
) -> None:
    """Add one flag of a :mod:`dpplan.commands` table."""
    if flag.switch:
        parser.add_argument(
            flag.option, dest=flag.field, action="store_true", help=flag.help, **more
        )
        return
    if flag.field in _READERS:
        more["type"] = Typed(flag.field, _READERS[flag.field])
    parser.add_argument(
        flag.option,
        dest=flag.field,
        default=flag.default,
        metavar=flag.metavar,
        choices=flag.choices,
        help=flag.help,
        **more,
    )


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--model",
        default="seed",
        choices=("seed", "tempered"),
        help="network: the super-convergence study's (seed) or Papernot et al.'s tempered CNN",
    )
    group.add_argument(
        "--activation",
        default="relu",
        choices=("relu", "tanh"),
        help="activation of the tempered CNN",
    )
    group.add_argument(
        "--seed",
        type=Typed("seed", read_number),
        default="0",
        help="seed of the model initialisation and dropout (not of the noise)",
    )
    group.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training device (auto: CUDA when available)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="existing folder with the MNIST IDX files (default "
        "$DPPLAN_DATA_DIR, else a per-user cache folder where missing files "
        "are downloaded); with --resume, read the run's MNIST from here",
    )
    group.add_argument(
        "--validation-size",
        type=Typed("validation_size", read_number),
        default="5000",
        help="examples held out of the 60,000 for validation",
    )
    group.add_argument(
        "--subset",
        type=Typed("subset", read_number),
        default=None,
        help="train on N examples only: the first N left after the validation split (quick runs)",
    )
    group.add_argument(
        "--test-subset",
        type=Typed("test_subset", read_number),
        default=None,
        help="evaluate on the first N test examples",
    )
    group.add_argument(
        "--target-epsilon",
        default=None,
        type=Typed("target_epsilon", read_number),
        help="stop before an epoch whose ε would exceed this",
    )
    group.add_argument(
        "--method",
        default="prv",
        choices=METHODS,
        help="accounting method of the recorded ε",
    )
    group.add_argument(
        "--engine",
        default="fused",
        choices=("fused", "opacus"),
        help="how each DP-SGD step is computed: fused (torch.func per-example "
        "gradients, compiled on CUDA) or opacus (Opacus' hooks); same mechanism "
        "and ε",
    )
    group.add_argument(
        "--non-private",
        action="store_true",
        help="train the non-private baseline (no clipping or noise; ε = ∞)",
    )
    group.add_argument(
        "--reproducible",
        action="store_true",
        help="derive sampling and noise from --seed (experiments only: no "
        "privacy against anyone who knows the seed)",
    )
    group.add_argument(
        "--threads",
        type=Typed("threads", read_number),
        default=None,
        metavar="N",
        help="CPU threads torch uses per run (default 1, measured fastest on a shared "
        "machine, see BENCHMARKS.md; a sweep: one per --cpus-per-trial). Speed only, "
        "never ε; may change with --resume",
    )
    group.add_argument("--json", action="store_true", help="print JSON")


def _add_task_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        default=None,
        metavar="MODULE:FUNCTION",
        help="train your own task: a function returning a dpplan.train.Task (model, data, "
        "loss), imported from a module on the Python path (e.g. PYTHONPATH=. and "
        "--task my_tasks:blobs); dataset_size is its training set size, and --model, "
        "--activation, --data-dir and the MNIST subsets are not used. Default: MNIST",
    )


def _add_plan_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan",
        metavar="FILE",
        help='a JSON plan instead of the plan flags: {"dataset_size": N, "delta": D, "phases": '
        '[{"batch_size": B, "noise_multiplier": S, "epochs": E}, ...]} (a phase may add '
        '"steps" to stop mid-epoch)',
    )


def _add_output_flags(parser: argparse.ArgumentParser, *, brief: str) -> None:
    """--every, --brief and --json, shared by ``epsilon`` and ``solve``."""
    parser.add_argument(
        "--every",
        default="1",
        type=Typed("every", read_number),
        metavar="K",
        help="plain output: show every K-th epoch (and the last)",
    )
    parser.add_argument("--brief", action="store_true", help=f"plain output: {brief}")
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> Parser:
    from dpplan.train.specs import (
        DEFAULT_CONSTANT_LRS,
        DEFAULT_ONE_CYCLE_LRS,
        DEFAULT_PLATEAU_LRS,
    )

    parser = Parser(
        prog="dpplan",
        description="Plan DP-SGD privacy budgets: ε after every epoch (RDP, PRV, PLD) and "
        "solvers for the noise multiplier, epochs or batch size.",
    )
    parser.add_argument("--version", action="version", version=f"dpplan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    defaults = DefaultsFormatter
    eps = commands.add_parser(
        "epsilon", help="ε after every epoch of a plan", formatter_class=defaults
    )
    _add_plan_flags(eps, or_file=True)
    _add_plan_file_flag(eps)
    eps.add_argument(
        "--method",
        choices=(*METHODS, "all"),
        default="all",
        help="accounting method (all: the three and the headline)",
    )
    _add_output_flags(eps, brief="only the final ε per method and the headline")
    eps.set_defaults(handler=cmd_epsilon)

    slv = commands.add_parser(
        "solve",
        help="solve for noise multiplier, epochs or batch size",
        description="Solve for one plan field so that ε meets a target. Run "
        "'dpplan solve TARGET --help' for the flags of one target.",
    )
    targets = slv.add_subparsers(
        dest="target", required=True, metavar="TARGET", parser_class=Parser
    )
    for target, field in SOLVE_TARGETS.items():
        words = field.replace("_", " ")
        sub = targets.add_parser(
            target,
            help=f"the {SOLVE_WHAT[field]} {words} that meets the target ε",
            description=f"Find the {SOLVE_WHAT[field]} {words} whose ε (an upper bound) is at "
            "most --target-epsilon; the other plan fields are given.",
            formatter_class=defaults,
        )
        sub.add_argument(
            "--target-epsilon",
            required=True,
            type=Typed("target_epsilon", read_number),
            metavar="X",
            help="ε to meet",
        )
        _add_plan_flags(sub, skip=field, or_file=True)
        _add_plan_file_flag(sub)
        sub.add_argument(
            "--method",
            choices=("best", *METHODS),
            default="best",
            help="accounting method (best: solve with each and keep the most favourable plan, "
            "certified by the method named in the output)",
        )
        _add_output_flags(sub, brief="only the solved value and its final ε")
        sub.set_defaults(handler=cmd_solve)

    trn = commands.add_parser(
        "train", help="train the plan with DP-SGD on MNIST", formatter_class=defaults
    )
    _add_plan_flags(trn, skip="dataset_size", required="unless --resume", or_file=True)
    _add_plan_file_flag(trn)
    trn.add_argument(
        "--schedule",
        default="one_cycle",
        choices=("one_cycle", "plateau", "constant"),
        help="learning-rate schedule",
    )
    trn.add_argument(
        "--lr",
        type=Typed("lr", read_number),
        default="1.0",
        help="learning rate (the peak for one_cycle)",
    )
    trn.add_argument(
        "--momentum",
        type=Typed("momentum", read_number),
        default=None,
        help="SGD momentum (one_cycle cycles 0.95-0.85 unless given)",
    )
    trn.add_argument(
        "--plateau-every",
        type=Typed("plateau_every", read_number),
        default=None,
        metavar="N",
        help="plateau only: step the schedule on the validation loss every N optimizer "
        "steps (patience counts these evaluations) instead of once per epoch",
    )
    trn.add_argument(
        "--resume",
        default=None,
        type=Typed("resume", read_run_id),
        metavar="RUN_ID",
        help="continue an interrupted run from its last checkpoint",
    )
    _add_run_flags(trn)
    _add_task_flag(trn)
    trn.set_defaults(handler=cmd_train, dataset_size=None, parser_=trn)

    cmp_ = commands.add_parser(
        "compare",
        help="fair comparison of one-cycle and plateau at equal ε (LR grid x seeds)",
        formatter_class=defaults,
    )
    _add_plan_flags(cmp_, skip="dataset_size", or_file=True)
    _add_plan_file_flag(cmp_)
    cmp_.add_argument(
        "--one-cycle-lrs",
        type=Typed("one_cycle_lrs", read_numbers),
        default=",".join(f"{lr:g}" for lr in DEFAULT_ONE_CYCLE_LRS),
        help="one-cycle peak LR grid (default: the peaks the notebooks selected)",
    )
    cmp_.add_argument(
        "--plateau-lrs",
        type=Typed("plateau_lrs", read_numbers),
        default=",".join(f"{lr:g}" for lr in DEFAULT_PLATEAU_LRS),
        help="plateau start LR grid",
    )
    cmp_.add_argument(
        "--seeds",
        type=Typed("seeds", read_numbers),
        default="0,1,2",
        help="seeds; the first selects the LR",
    )
    _add_run_flags(cmp_)
    _add_task_flag(cmp_)
    cmp_.set_defaults(handler=cmd_compare, dataset_size=None)

    swp = commands.add_parser(
        "sweep",
        help="the ε-vs-accuracy frontier: plans solved per target ε, schedules tuned, on Ray",
        formatter_class=defaults,
        description="For every target ε, batch size and number of epochs, solve the noise "
        "multiplier; tune every schedule's learning rate on validation accuracy with the first "
        "seed, repeat the choice with the other seeds; store every run, the frontier and the "
        "privacy cost of the tuning. Runs on an embedded Ray by default (pip install -e "
        "'.[sweep]').",
    )
    grid = swp.add_argument_group("grid (required unless --resume)")
    grid.add_argument(
        "--epsilons",
        type=Typed("epsilons", read_numbers),
        default=None,
        metavar="E1,E2",
        help="target ε values",
    )
    grid.add_argument(
        "--batch-sizes",
        type=Typed("batch_sizes", read_numbers),
        default=None,
        metavar="B1,B2",
        help="batch sizes",
    )
    grid.add_argument(
        "--epochs",
        type=Typed("epochs", read_numbers),
        default=None,
        metavar="E1,E2",
        help="numbers of epochs",
    )
    swp.add_argument(
        "--delta", type=Typed("delta", read_number), default="1e-5", help="δ of every plan"
    )
    swp.add_argument(
        "--max-grad-norm",
        type=Typed("max_grad_norm", read_number),
        default="1.0",
        help="clipping norm C (does not change ε)",
    )
    swp.add_argument(
        "--schedules",
        default="one_cycle,plateau",
        help="schedules to tune (one_cycle, plateau, constant)",
    )
    swp.add_argument(
        "--one-cycle-lrs",
        type=Typed("one_cycle_lrs", read_numbers),
        default=",".join(f"{lr:g}" for lr in DEFAULT_ONE_CYCLE_LRS),
        help="one-cycle peak LR grid (default: the peaks the notebooks selected; the "
        "published 15.62 diverges in this set-up)",
    )
    swp.add_argument(
        "--plateau-lrs",
        type=Typed("plateau_lrs", read_numbers),
        default=",".join(f"{lr:g}" for lr in DEFAULT_PLATEAU_LRS),
        help="plateau start LR grid",
    )
    swp.add_argument(
        "--constant-lrs",
        type=Typed("constant_lrs", read_numbers),
        default=",".join(f"{lr:g}" for lr in DEFAULT_CONSTANT_LRS),
        help="constant LR grid",
    )
    swp.add_argument(
        "--seeds",
        type=Typed("seeds", read_numbers),
        default="0,1,2",
        help="seeds; the first selects the LR",
    )
    swp.add_argument(
        "--random-repeats",
        type=Typed("random_repeats", read_number),
        default=None,
        metavar="MEAN",
        help="Papernot & Steinke's protocol: per ε, a secret Poisson(MEAN) number "
        "of configurations drawn at random from the grid; the best is the tuned "
        "model (small stated ε overhead instead of composing every run)",
    )
    swp.add_argument(
        "--simulate",
        default=None,
        type=Typed("simulate", read_number),
        metavar="K",
        help="predict the frontier by simulation (issue 22): every trial trains B/K with σ/K "
        "for the plan's steps; points are marked 'predicted (sim K=…)' with the measured "
        "error at K (README: Predict before you train)",
    )
    swp.add_argument(
        "--simulate-data",
        default="training",
        choices=("training", "validation"),
        help="what simulated trials train on: the training data (their own, large ε "
        "counts) or the validation split, treated as public",
    )
    swp.add_argument(
        "--resume",
        default=None,
        type=Typed("resume", read_sweep_id),
        metavar="SWEEP_ID",
        help="continue a sweep (ids: 'dpplan sweeps'): run only the trials without an "
        "outcome; flags that change its grid or options are refused",
    )
    ray_ = swp.add_argument_group("execution")
    ray_.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="an existing Ray cluster (default $DPPLAN_RAY_ADDRESS, else an "
        "embedded Ray over this machine's CPUs and GPUs)",
    )
    ray_.add_argument(
        "--gpus-per-trial",
        type=Typed("gpus_per_trial", read_number),
        default=None,
        metavar="F",
        help="GPU fraction per trial (default 0.25 with GPUs: four trials share "
        "one; 0 trains on CPUs)",
    )
    ray_.add_argument(
        "--cpus-per-trial",
        type=Typed("cpus_per_trial", read_number),
        default="1",
        metavar="N",
        help="CPUs per trial",
    )
    ray_.add_argument(
        "--num-cpus",
        type=Typed("num_cpus", read_number),
        default=None,
        metavar="N",
        help="CPUs of the embedded Ray (default: all)",
    )
    ray_.add_argument(
        "--worker-data",
        action="store_true",
        help="workers read MNIST from their own --data-dir instead of receiving "
        "it through Ray's object store",
    )
    ray_.add_argument(
        "--local",
        action="store_true",
        help="run the trials one at a time in this process, without Ray",
    )
    _add_run_flags(swp)
    _add_task_flag(swp)
    swp.set_defaults(handler=cmd_sweep, parser_=swp)

    frt = commands.add_parser("frontier", help="a stored sweep's frontier and tuning cost")
    frt.add_argument(
        "sweep_id",
        type=Typed("sweep_id", read_sweep_id),
        metavar="SWEEP_ID",
        help="the sweep's id, as listed by 'dpplan sweeps'",
    )
    frt.add_argument("--json", action="store_true", help="print JSON")
    frt.set_defaults(handler=cmd_frontier)

    sws = commands.add_parser(
        "sweeps",
        help="list the stored sweeps (id, status, grid, trials done/failed, created)",
        description="List every stored sweep, newest first. 'dpplan frontier SWEEP_ID' shows one.",
    )
    sws.add_argument("--json", action="store_true", help="print JSON")
    sws.set_defaults(handler=cmd_sweeps)

    app = commands.add_parser("app", help="start the planner in the browser (Streamlit)")
    app.add_argument(
        "--port",
        default="8501",
        type=Typed("port", lambda _, text: validate_port(text)),
        help="port to serve on (default 8501)",
    )
    app.add_argument("--address", default="localhost", help="address to bind (default localhost)")
    app.add_argument("--headless", action="store_true", help="do not open a browser window")
    app.set_defaults(handler=cmd_app)

    runs = commands.add_parser(
        "runs",
        help="list, show, stop or delete stored runs",
        description="Without an action, list every stored run.",
    )
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=cmd_runs, action="list", run_id=None, force=False)
    actions = runs.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    for action, text in (
        ("list", "every stored run (the default)"),
        ("show", "one run's plan, status and per-epoch records"),
        ("stop", "ask a running run to stop, or cancel a queued one"),
        ("delete", "remove a run, its records and its checkpoint"),
    ):
        sub = actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        if action != "list":
            sub.add_argument(
                "run_id",
                type=Typed("run_id", read_run_id),
                metavar="RUN_ID",
                help="the run's id, as listed by 'dpplan runs'",
            )
        if action == "stop":
            sub.add_argument(
                "--force",
                action="store_true",
                help="mark a run stopped now, e.g. one whose host or process is "
                "gone (its heartbeat is stale); records and checkpoint are kept",
            )
        sub.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
        )

    rep = commands.add_parser(
        "report",
        help="ε-budget report of a plan, a stored run, a sweep or a ledger (Markdown, HTML, "
        "JSON or PDF)",
    )
    _add_plan_flags(rep, required="unless --run, --sweep or --ledger", or_file=True)
    for flag in REPORT_FLAGS:
        _add_flag(rep, flag)
    rep.set_defaults(handler=cmd_report)
    return parser


def _version() -> str:
    from dpplan import __version__

    return __version__
