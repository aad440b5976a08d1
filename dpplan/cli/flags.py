"""Every ``dpplan`` command's flags, as data: the parser is built from these tables.

A command is a sequence of :class:`Section`: the plan flags (:data:`dpplan.commands.PLAN_FLAGS`,
with the command's condition), an argument group with a title, or flags added to the
command's own options. Flags that two commands share are one :class:`~dpplan.commands.Flag`
here, so their spelling, converter, default and help cannot drift apart; the ``--resume``
checks read :attr:`Flag.resumable <dpplan.commands.Flag>` from the same entries.
"""

from __future__ import annotations

import argparse
import dataclasses

from dpplan.accounting import METHODS
from dpplan.commands import PLAN_FILE_FLAG, REPORT_FLAGS, Flag, number, numbers, switch
from dpplan.train.specs import DEFAULT_CONSTANT_LRS, DEFAULT_ONE_CYCLE_LRS, DEFAULT_PLATEAU_LRS

__all__ = [
    "COMMANDS",
    "RUN_ACTIONS",
    "SOLVE_COMMANDS",
    "TRAINING_FLAGS",
    "Command",
    "Section",
    "command",
    "flags_of",
    "resumable",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Section:
    """Flags added together, in order.

    Attributes:
        flags: the flags.
        title: the argument group they form in ``--help``; ``None``: the command's options.
        plan: instead of ``flags``, the plan flags and ``--plan FILE``'s alternative, required
            unless the condition given here ("" when always); ``None``: not the plan.
        skip: a plan field the command takes from elsewhere (no flag).
    """

    flags: tuple[Flag, ...] = ()
    title: str | None = None
    plan: str | None = None
    skip: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    """One ``dpplan`` command: its name, ``--help`` texts and flag sections."""

    name: str
    help: str
    description: str | None = None
    show_defaults: bool = False
    sections: tuple[Section, ...] = ()


def _grid(rates: tuple[float, ...]) -> str:
    return ",".join(f"{lr:g}" for lr in rates)


JSON = switch("json", help="print JSON")
EVERY = number(
    "every", default="1", metavar="K", help="plain output: show every K-th epoch (and the last)"
)
TASK = Flag(
    field="task",
    metavar="MODULE:FUNCTION",
    help="train your own task: a function returning a dpplan.train.Task (model, data, "
    "loss), imported from a module on the Python path (e.g. PYTHONPATH=. and "
    "--task my_tasks:blobs); dataset_size is its training set size, and --model, "
    "--activation, --data-dir and the MNIST subsets are not used. Default: MNIST",
)
#: ``--plateau-every`` of ``compare`` and ``sweep`` (issue 24); ``train`` has its own, for
#: its one schedule.
PLATEAU_EVERY = number(
    "plateau_every",
    metavar="N",
    help="step every plateau run's schedule on the validation loss every N optimizer steps "
    "(patience counts these evaluations), so it can act within a short run; default: once "
    "per epoch",
)
SEEDS = numbers("seeds", default="0,1,2", help="seeds; the first selects the LR")
PLATEAU_LRS = numbers(
    "plateau_lrs", default=_grid(DEFAULT_PLATEAU_LRS), help="plateau start LR grid"
)


def _plan_or_file(*flags: Flag, required: str = "", skip: str | None = None) -> tuple[Section, ...]:
    """The plan flags (required unless ``required``), then ``--plan FILE``, their alternative,
    and the command's own ``flags``."""
    return (Section(plan=required, skip=skip), Section(flags=(PLAN_FILE_FLAG, *flags)))


#: The ``training`` group of ``train``, ``compare`` and ``sweep``.
TRAINING_FLAGS: tuple[Flag, ...] = (
    Flag(
        field="model",
        default="seed",
        choices=("seed", "tempered"),
        help="network: the super-convergence study's (seed) or Papernot et al.'s tempered CNN",
    ),
    Flag(
        field="activation",
        default="relu",
        choices=("relu", "tanh"),
        help="activation of the tempered CNN",
    ),
    number(
        "seed", default="0", help="seed of the model initialisation and dropout (not of the noise)"
    ),
    Flag(
        field="device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training device (auto: CUDA when available)",
    ),
    Flag(
        field="data_dir",
        resumable=True,
        help="existing folder with the MNIST IDX files (default "
        "$DPPLAN_DATA_DIR, else a per-user cache folder where missing files "
        "are downloaded); with --resume, read the run's MNIST from here",
    ),
    number(
        "validation_size", default="5000", help="examples held out of the 60,000 for validation"
    ),
    number(
        "subset",
        help="train on N examples only: the first N left after the validation split (quick runs)",
    ),
    number("test_subset", help="evaluate on the first N test examples"),
    number("target_epsilon", help="stop before an epoch whose ε would exceed this"),
    Flag(
        field="method", default="prv", choices=METHODS, help="accounting method of the recorded ε"
    ),
    Flag(
        field="engine",
        default="fused",
        choices=("fused", "opacus"),
        help="how each DP-SGD step is computed: fused (torch.func per-example "
        "gradients, compiled on CUDA) or opacus (Opacus' hooks); same mechanism "
        "and ε",
    ),
    switch("non_private", help="train the non-private baseline (no clipping or noise; ε = ∞)"),
    switch(
        "reproducible",
        help="derive sampling and noise from --seed (experiments only: no "
        "privacy against anyone who knows the seed)",
    ),
    number(
        "threads",
        metavar="N",
        resumable=True,
        help="CPU threads torch uses per run (default 1, measured fastest on a shared "
        "machine, see BENCHMARKS.md; a sweep: one per --cpus-per-trial). Speed only, "
        "never ε; may change with --resume",
    ),
    dataclasses.replace(JSON, resumable=True),
)

_TRAINING = Section(title="training", flags=TRAINING_FLAGS)


def _solve_command(field: str, what: str) -> Command:
    """``dpplan solve TARGET`` for the plan field ``field`` (the ``what`` value)."""
    words = field.replace("_", " ")
    return Command(
        name=field.replace("_", "-"),
        help=f"the {what} {words} that meets the target ε",
        description=f"Find the {what} {words} whose ε (an upper bound) is at "
        "most --target-epsilon; the other plan fields are given.",
        show_defaults=True,
        sections=(
            Section(
                flags=(number("target_epsilon", required=True, metavar="X", help="ε to meet"),)
            ),
            *_plan_or_file(
                Flag(
                    field="method",
                    choices=("best", *METHODS),
                    default="best",
                    help="accounting method (best: solve with each and keep the most "
                    "favourable plan, certified by the method named in the output)",
                ),
                EVERY,
                switch("brief", help="plain output: only the solved value and its final ε"),
                JSON,
                skip=field,
            ),
        ),
    )


#: ``dpplan solve``'s targets: the plan field each solves for and the value it finds.
SOLVE_COMMANDS: tuple[Command, ...] = (
    _solve_command("noise_multiplier", "smallest"),
    _solve_command("epochs", "most"),
    _solve_command("batch_size", "largest"),
)

_EPSILON = Command(
    name="epsilon",
    help="ε after every epoch of a plan",
    show_defaults=True,
    sections=(
        *_plan_or_file(
            Flag(
                field="method",
                choices=(*METHODS, "all"),
                default="all",
                help="accounting method (all: the three and the headline)",
            ),
            EVERY,
            switch("brief", help="plain output: only the final ε per method and the headline"),
            JSON,
        ),
    ),
)

_TRAIN = Command(
    name="train",
    help="train the plan with DP-SGD on MNIST",
    show_defaults=True,
    sections=(
        *_plan_or_file(
            Flag(
                field="schedule",
                default="one_cycle",
                choices=("one_cycle", "plateau", "constant"),
                help="learning-rate schedule",
            ),
            number("lr", default="1.0", help="learning rate (the peak for one_cycle)"),
            number("momentum", help="SGD momentum (one_cycle cycles 0.95-0.85 unless given)"),
            number(
                "plateau_every",
                metavar="N",
                help="plateau only: step the schedule on the validation loss every N "
                "optimizer steps (patience counts these evaluations) instead of once per "
                "epoch",
            ),
            Flag(
                field="resume",
                read="run_id",
                metavar="RUN_ID",
                resumable=True,
                help="continue an interrupted run from its last checkpoint",
            ),
            required="unless --resume",
            skip="dataset_size",
        ),
        _TRAINING,
        Section(flags=(TASK,)),
    ),
)

_COMPARE = Command(
    name="compare",
    help="fair comparison of one-cycle and plateau at equal ε (LR grid x seeds)",
    show_defaults=True,
    sections=(
        *_plan_or_file(
            numbers(
                "one_cycle_lrs",
                default=_grid(DEFAULT_ONE_CYCLE_LRS),
                help="one-cycle peak LR grid (default: the peaks the notebooks selected)",
            ),
            PLATEAU_LRS,
            PLATEAU_EVERY,
            SEEDS,
            skip="dataset_size",
        ),
        _TRAINING,
        Section(flags=(TASK,)),
    ),
)

#: ``dpplan sweep``'s ``execution`` group: how the trials run (may change with ``--resume``).
EXECUTION_FLAGS: tuple[Flag, ...] = (
    Flag(
        field="ray_address",
        metavar="ADDRESS",
        resumable=True,
        help="an existing Ray cluster (default $DPPLAN_RAY_ADDRESS, else an "
        "embedded Ray over this machine's CPUs and GPUs)",
    ),
    number(
        "gpus_per_trial",
        metavar="F",
        resumable=True,
        help="GPU fraction per trial (default 0.25 with GPUs: four trials share "
        "one; 0 trains on CPUs)",
    ),
    number("cpus_per_trial", default="1", metavar="N", resumable=True, help="CPUs per trial"),
    number("num_cpus", metavar="N", resumable=True, help="CPUs of the embedded Ray (default: all)"),
    switch(
        "worker_data",
        resumable=True,
        help="workers read MNIST from their own --data-dir instead of receiving "
        "it through Ray's object store",
    ),
    switch(
        "local", resumable=True, help="run the trials one at a time in this process, without Ray"
    ),
)

_SWEEP = Command(
    name="sweep",
    help="the ε-vs-accuracy frontier: plans solved per target ε, schedules tuned, on Ray",
    description="For every target ε, batch size and number of epochs, solve the noise "
    "multiplier; tune every schedule's learning rate on validation accuracy with the first "
    "seed, repeat the choice with the other seeds; store every run, the frontier and the "
    "privacy cost of the tuning. Runs on an embedded Ray by default (pip install -e "
    "'.[sweep]').",
    show_defaults=True,
    sections=(
        Section(
            title="grid (required unless --resume)",
            flags=(
                numbers("epsilons", metavar="E1,E2", help="target ε values"),
                numbers("batch_sizes", metavar="B1,B2", help="batch sizes"),
                numbers("epochs", metavar="E1,E2", help="numbers of epochs"),
            ),
        ),
        Section(
            flags=(
                number("delta", default="1e-5", help="δ of every plan"),
                number("max_grad_norm", default="1.0", help="clipping norm C (does not change ε)"),
                Flag(
                    field="schedules",
                    default="one_cycle,plateau",
                    help="schedules to tune (one_cycle, plateau, constant)",
                ),
                numbers(
                    "one_cycle_lrs",
                    default=_grid(DEFAULT_ONE_CYCLE_LRS),
                    help="one-cycle peak LR grid (default: the peaks the notebooks selected; "
                    "the published 15.62 diverges in this set-up)",
                ),
                PLATEAU_LRS,
                PLATEAU_EVERY,
                numbers(
                    "constant_lrs", default=_grid(DEFAULT_CONSTANT_LRS), help="constant LR grid"
                ),
                SEEDS,
                number(
                    "random_repeats",
                    metavar="MEAN",
                    help="Papernot & Steinke's protocol: per ε, a secret Poisson(MEAN) number "
                    "of configurations drawn at random from the grid; the best is the tuned "
                    "model (small stated ε overhead instead of composing every run)",
                ),
                number(
                    "simulate",
                    metavar="K",
                    help="predict the frontier by simulation (issue 22): every trial trains "
                    "B/K with σ/K for the plan's steps; points are marked 'predicted (sim "
                    "K=…)' with the measured error at K (README: Predict before you train)",
                ),
                Flag(
                    field="simulate_data",
                    default="training",
                    choices=("training", "validation"),
                    help="what simulated trials train on: the training data (their own, large "
                    "ε counts) or the validation split, treated as public",
                ),
                Flag(
                    field="resume",
                    read="sweep_id",
                    metavar="SWEEP_ID",
                    resumable=True,
                    help="continue a sweep (ids: 'dpplan sweeps'): run only the trials "
                    "without an outcome; flags that change its grid or options are refused",
                ),
            )
        ),
        Section(title="execution", flags=EXECUTION_FLAGS),
        _TRAINING,
        Section(flags=(TASK,)),
    ),
)


def _command(name: str, help: str, *flags: Flag, description: str | None = None) -> Command:
    """A command whose flags are all its own options (no plan, no groups)."""
    return Command(name=name, help=help, description=description, sections=(Section(flags=flags),))


def _run_action(name: str, help: str, *flags: Flag) -> Command:
    """``dpplan runs NAME``: its description is its help as a sentence."""
    return _command(name, help, *flags, description=help[0].upper() + help[1:] + ".")


_FRONTIER = _command(
    "frontier",
    "a stored sweep's frontier and tuning cost",
    Flag(
        field="sweep_id",
        positional=True,
        read="sweep_id",
        metavar="SWEEP_ID",
        help="the sweep's id, as listed by 'dpplan sweeps'",
    ),
    JSON,
)
_SWEEPS = _command(
    "sweeps",
    "list the stored sweeps (id, status, grid, trials done/failed, created)",
    JSON,
    description="List every stored sweep, newest first. 'dpplan frontier SWEEP_ID' shows one.",
)
_APP = _command(
    "app",
    "start the planner in the browser (Streamlit)",
    Flag(field="port", read="port", default="8501", help="port to serve on (default 8501)"),
    Flag(field="address", default="localhost", help="address to bind (default localhost)"),
    switch("headless", help="do not open a browser window"),
)
_RUNS = _command(
    "runs",
    "list, show, stop or delete stored runs",
    JSON,
    description="Without an action, list every stored run.",
)

_RUN_ID = Flag(
    field="run_id",
    positional=True,
    read="run_id",
    metavar="RUN_ID",
    help="the run's id, as listed by 'dpplan runs'",
)
_RUN_JSON = dataclasses.replace(JSON, default=argparse.SUPPRESS)

#: ``dpplan runs ACTION``: each action's help and flags (``--json`` also after the action).
RUN_ACTIONS: tuple[Command, ...] = (
    _run_action("list", "every stored run (the default)", _RUN_JSON),
    _run_action("show", "one run's plan, status and per-epoch records", _RUN_ID, _RUN_JSON),
    _run_action(
        "stop",
        "ask a running run to stop, or cancel a queued one",
        _RUN_ID,
        switch(
            "force",
            help="mark a run stopped now, e.g. one whose host or process is "
            "gone (its heartbeat is stale); records and checkpoint are kept",
        ),
        _RUN_JSON,
    ),
    _run_action("delete", "remove a run, its records and its checkpoint", _RUN_ID, _RUN_JSON),
)

_REPORT = Command(
    name="report",
    help="ε-budget report of a plan, a stored run, a sweep or a ledger (Markdown, HTML, "
    "JSON or PDF)",
    sections=(
        Section(plan="unless --run, --sweep or --ledger"),
        Section(flags=REPORT_FLAGS),
    ),
)

#: The commands in ``dpplan --help``'s order (``solve`` holds :data:`SOLVE_COMMANDS`).
COMMANDS: tuple[Command, ...] = (
    _EPSILON,
    Command(
        name="solve",
        help="solve for noise multiplier, epochs or batch size",
        description="Solve for one plan field so that ε meets a target. Run "
        "'dpplan solve TARGET --help' for the flags of one target.",
    ),
    _TRAIN,
    _COMPARE,
    _SWEEP,
    _FRONTIER,
    _SWEEPS,
    _APP,
    _RUNS,
    _REPORT,
)


def flags_of(command: Command) -> tuple[Flag, ...]:
    """The flags of ``command``'s sections (not the plan's)."""
    return tuple(flag for section in command.sections for flag in section.flags)


def command(name: str) -> Command:
    """The command ``dpplan NAME`` of :data:`COMMANDS`.

    Raises:
        KeyError: for a name that is not a command.
    """
    for found in COMMANDS:
        if found.name == name:
            return found
    raise KeyError(name)


def resumable(name: str) -> frozenset[str]:
    """The fields of ``dpplan NAME``'s flags that may differ from what ``--resume`` continues."""
    return frozenset(flag.field for flag in flags_of(command(name)) if flag.resumable)
