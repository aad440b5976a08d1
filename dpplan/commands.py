"""The command-line flags that more than one layer spells, written once.

The CLI's parser adds the plan flags and ``dpplan report``'s flags from these tables (and every
other command's from :mod:`dpplan.cli.flags`, made of the same :class:`Flag`), and the
report layer writes the command that regenerates a report with :func:`report_command`, so a
renamed flag cannot leave a report printing a command the CLI refuses. Imports no dpplan
module (the CLI and the report both sit above it).

Example:
    >>> report_command({"run": 7, "home": None, "title": "MNIST run", "format": "md"})
    "dpplan report --run 7 --title 'MNIST run' --format md"
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PLAN_FILE_FLAG",
    "PLAN_FLAGS",
    "REPORT_FLAGS",
    "REPORT_FORMATS",
    "Flag",
    "number",
    "numbers",
    "report_command",
    "switch",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Flag:
    """One long flag: the field it sets (``--batch-size`` sets ``batch_size``) and its help.

    ``read`` names how the parser turns the text into a value at parse time: ``"number"``,
    ``"numbers"`` (comma-separated), ``"run_id"``, ``"sweep_id"`` or ``"port"`` (the CLI's
    converters, which raise the error naming ``field``); ``None`` keeps the text. A text
    ``default`` is read the same way. ``positional`` makes it an argument without ``--``;
    ``resumable`` marks a flag that may differ from the stored run or sweep with
    ``--resume`` (where the data is read and how the work runs, never what it trains).
    """

    field: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    default: str | None = None
    switch: bool = False  # a flag without a value (argparse's store_true)
    read: str | None = None
    required: bool = False
    positional: bool = False
    resumable: bool = False

    @property
    def option(self) -> str:
        """The flag as typed: ``--`` and the field with dashes."""
        return "--" + self.field.replace("_", "-")


def number(field: str, **more: Any) -> Flag:
    """A flag whose value is read as a number (``Flag(read="number")``)."""
    return Flag(field=field, read="number", **more)


def numbers(field: str, **more: Any) -> Flag:
    """A flag whose value is a comma-separated list of numbers (``Flag(read="numbers")``)."""
    return Flag(field=field, read="numbers", **more)


def switch(field: str, **more: Any) -> Flag:
    """A flag without a value: true when given (``Flag(switch=True)``)."""
    return Flag(field=field, switch=True, **more)


#: The plan's flags, in ``TrainingPlan``'s field order.
PLAN_FLAGS: tuple[Flag, ...] = tuple(
    number(field, metavar="X", help=text)
    for field, text in (
        ("dataset_size", "number of training records N"),
        ("batch_size", "expected batch size B (Poisson sampling, sample rate B/N)"),
        ("noise_multiplier", "noise multiplier σ (noise std / clipping norm), in [0.01, 1000]"),
        ("epochs", "number of epochs"),
        ("delta", "δ of the (ε, δ) guarantee, e.g. 1e-5"),
        ("max_grad_norm", "per-example clipping norm (default 1.0; does not change ε)"),
    )
)

#: ``--plan FILE``: a JSON plan in place of the plan flags (epsilon, solve, train, compare, report).
PLAN_FILE_FLAG = Flag(
    field="plan",
    metavar="FILE",
    help='a JSON plan instead of the plan flags: {"dataset_size": N, "delta": D, "phases": '
    '[{"batch_size": B, "noise_multiplier": S, "epochs": E}, ...]} (a phase may add '
    '"steps" to stop mid-epoch)',
)

#: The formats ``dpplan report --format`` writes.
REPORT_FORMATS = ("md", "html", "json", "pdf")

#: ``dpplan report``'s own flags (besides the plan's), in the order a command spells them.
REPORT_FLAGS: tuple[Flag, ...] = (
    Flag(
        field="run",
        read="run_id",
        metavar="ID",
        help="report on a stored run instead of a plan (saved with the run)",
    ),
    Flag(
        field="sweep",
        read="sweep_id",
        metavar="ID",
        help="report on a stored sweep: its frontier, best accuracy at ε ≤ x with "
        "the plan behind it, per-schedule curves and the privacy cost of tuning",
    ),
    PLAN_FILE_FLAG,
    Flag(
        field="ledger",
        metavar="FILE",
        help="report on a dpplan.Ledger saved as JSON (Ledger.to_dict()): its records, "
        "sampling schemes, neighbouring relation and each method's ε",
    ),
    Flag(
        field="home",
        metavar="DIR",
        help="run store folder for --run or --sweep (default $DPPLAN_HOME or a per-user folder)",
    ),
    switch("stored", help="with --run: render the report stored with the run, unchanged"),
    number(
        "tuning_runs",
        metavar="K",
        help="number of training runs made on this data (hyper-parameter "
        "tuning); the report adds ε of all of them",
    ),
    Flag(
        field="format",
        choices=REPORT_FORMATS,
        default="md",
        help="md (default), html (one self-contained file), json, or pdf (the "
        "HTML printed by WeasyPrint; needs --output and dpplan[pdf])",
    ),
    Flag(
        field="output",
        metavar="FILE",
        help="write to FILE instead of standard output",
    ),
    Flag(field="title", help="report title"),
    Flag(field="notes", help="notes shown in the report, as written"),
)

_REPORT_COMMAND_FLAGS = {flag.field: flag for flag in (*PLAN_FLAGS, *REPORT_FLAGS)}


def report_command(values: Mapping[str, object]) -> str:
    """The shell command ``dpplan report`` with a flag for every value that is not ``None``.

    Args:
        values: flag field -> value (``{"run": 7, "format": "md"}``), in the order to spell
            them; a switch is given when its value is true. Floats are written with ``repr``,
            which reads back to the same float.

    Returns:
        The command, quoted for a POSIX shell.

    Raises:
        KeyError: for a field that is not a flag of ``dpplan report``.
    """
    words = ["dpplan", "report"]
    for field, value in values.items():
        flag = _REPORT_COMMAND_FLAGS[field]
        if value is None or (flag.switch and not value):
            continue
        words += [flag.option] if flag.switch else [flag.option, str(value)]
    return shlex.join(words)
