"""The argparse construction for every ``dpplan`` command, from the tables of
:mod:`dpplan.cli.flags` and :mod:`dpplan.commands`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dpplan.cli.app_command import cmd_app, validate_port
from dpplan.cli.common import (
    DefaultsFormatter,
    Parser,
    Typed,
    read_number,
    read_numbers,
    read_run_id,
    read_sweep_id,
)
from dpplan.cli.flags import COMMANDS, RUN_ACTIONS, SOLVE_COMMANDS, Command
from dpplan.cli.plan_commands import cmd_epsilon, cmd_solve
from dpplan.cli.report_command import cmd_report
from dpplan.cli.run_commands import cmd_runs
from dpplan.cli.sweep_commands import cmd_frontier, cmd_sweep, cmd_sweeps
from dpplan.cli.train_commands import cmd_compare, cmd_train
from dpplan.commands import PLAN_FLAGS, Flag

#: The converters a flag's ``read`` names (see :class:`~dpplan.commands.Flag` and ``Typed``).
_READERS: dict[str, Callable[[str, str], Any]] = {
    "number": read_number,
    "numbers": read_numbers,
    "run_id": read_run_id,
    "sweep_id": read_sweep_id,
    "port": lambda _, text: validate_port(text),
}

#: Each command's handler and the values it finds without a flag (``solve``: its targets').
_HANDLERS: dict[str, Callable[..., int]] = {
    "epsilon": cmd_epsilon,
    "train": cmd_train,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
    "frontier": cmd_frontier,
    "sweeps": cmd_sweeps,
    "app": cmd_app,
    "runs": cmd_runs,
    "report": cmd_report,
}
_MORE_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"dataset_size": None},
    "compare": {"dataset_size": None},
    "runs": {"action": "list", "run_id": None, "force": False},
}
#: Commands whose handler re-reads the command line (``given_flags``, for ``--resume``).
_KEEP_PARSER = ("train", "sweep")


def _add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: Flag, **more
) -> None:
    """Add one flag of a :mod:`dpplan.commands` or :mod:`dpplan.cli.flags` table."""
    if flag.read is not None:
        more["type"] = Typed(flag.field, _READERS[flag.read])
    if flag.switch:
        if flag.default is not None:
            more["default"] = flag.default
        parser.add_argument(
            flag.option, dest=flag.field, action="store_true", help=flag.help, **more
        )
        return
    if flag.positional:
        parser.add_argument(flag.field, metavar=flag.metavar, help=flag.help, **more)
        return
    if flag.required:
        more["required"] = True
    parser.add_argument(
        flag.option,
        dest=flag.field,
        default=flag.default,
        metavar=flag.metavar,
        choices=flag.choices,
        help=flag.help,
        **more,
    )


def _add_sections(parser: argparse.ArgumentParser, command: Command) -> None:
    """Add ``command``'s flags, section by section (:class:`~dpplan.cli.flags.Section`)."""
    for section in command.sections:
        if section.plan is not None:  # with --plan FILE as the alternative to every flag
            condition = f" {section.plan}" if section.plan else ""
            group = parser.add_argument_group(f"plan (required{condition}), or --plan FILE")
            for flag in PLAN_FLAGS:
                if flag.field != section.skip:
                    _add_flag(group, flag, required=False)
            continue
        target = parser if section.title is None else parser.add_argument_group(section.title)
        for flag in section.flags:
            _add_flag(target, flag)


def _add_command(commands: Any, command: Command) -> Parser:
    sub = commands.add_parser(
        command.name,
        help=command.help,
        description=command.description,
        **({"formatter_class": DefaultsFormatter} if command.show_defaults else {}),
    )
    _add_sections(sub, command)
    return sub


def build_parser() -> Parser:
    parser = Parser(
        prog="dpplan",
        description="Plan DP-SGD privacy budgets: ε after every epoch (RDP, PRV, PLD) and "
        "solvers for the noise multiplier, epochs or batch size.",
    )
    parser.add_argument("--version", action="version", version=f"dpplan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        sub = _add_command(commands, command)
        if command.name in _HANDLERS:
            defaults = {"handler": _HANDLERS[command.name], **_MORE_DEFAULTS.get(command.name, {})}
            sub.set_defaults(
                **defaults, **({"parser_": sub} if command.name in _KEEP_PARSER else {})
            )
        if command.name == "solve":
            targets = sub.add_subparsers(
                dest="target", required=True, metavar="TARGET", parser_class=Parser
            )
            for target in SOLVE_COMMANDS:
                _add_command(targets, target).set_defaults(handler=cmd_solve)
        elif command.name == "runs":
            actions = sub.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
            for action in RUN_ACTIONS:
                _add_command(actions, action)
    return parser


def _version() -> str:
    from dpplan import __version__

    return __version__
