"""The command-line flags that more than one layer spells, written once.

The CLI's parser adds the plan flags and ``dpplan report``'s flags from these tables, and the
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

__all__ = ["PLAN_FLAGS", "REPORT_FLAGS", "REPORT_FORMATS", "Flag", "report_command"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Flag:
    """One long flag: the field it sets (``--batch-size`` sets ``batch_size``) and its help."""

    field: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    default: str | None = None
    switch: bool = False  # a flag without a value (argparse's store_true)

    @property
    def option(self) -> str:
        """The flag as typed: ``--`` and the field with dashes."""
        return "--" + self.field.replace("_", "-")


#: The plan's flags, in ``TrainingPlan``'s field order.
PLAN_FLAGS: tuple[Flag, ...] = (
    Flag(field="dataset_size", metavar="X", help="number of training records N"),
    Flag(
        field="batch_size",
        metavar="X",
        help="expected batch size B (Poisson sampling, sample rate B/N)",
    ),
    Flag(
        field="noise_multiplier",
        metavar="X",
        help="noise multiplier σ (noise std / clipping norm), in [0.01, 1000]",
    ),
    Flag(field="epochs", metavar="X", help="number of epochs"),
    Flag(field="delta", metavar="X", help="δ of the (ε, δ) guarantee, e.g. 1e-5"),
    Flag(
        field="max_grad_norm",
        metavar="X",
        help="per-example clipping norm (default 1.0; does not change ε)",
    ),
)

#: The formats ``dpplan report --format`` writes.
REPORT_FORMATS = ("md", "html", "json", "pdf")

#: ``dpplan report``'s own flags (besides the plan's), in the order a command spells them.
REPORT_FLAGS: tuple[Flag, ...] = (
    Flag(
        field="run",
        metavar="ID",
        help="report on a stored run instead of a plan (saved with the run)",
    ),
    Flag(
        field="sweep",
        metavar="ID",
        help="report on a stored sweep: its frontier, best accuracy at ε ≤ x with "
        "the plan behind it, per-schedule curves and the privacy cost of tuning",
    ),
    Flag(
        field="plan",
        metavar="FILE",
        help='a JSON plan instead of the plan flags: {"dataset_size": N, "delta": D, "phases": '
        '[{"batch_size": B, "noise_multiplier": S, "epochs": E}, ...]} (a phase may add '
        '"steps" to stop mid-epoch)',
    ),
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
    Flag(
        field="stored",
        switch=True,
        help="with --run: render the report stored with the run, unchanged",
    ),
    Flag(
        field="tuning_runs",
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
