"""dpplan.commands: the flags the CLI parses and the report's regeneration commands spell are
one table (issue 19)."""

from __future__ import annotations

import shlex

import pytest

from dpplan.cli.parser import build_parser
from dpplan.commands import PLAN_FLAGS, REPORT_FLAGS, REPORT_FORMATS, report_command
from dpplan.plan import TrainingPlan


def _parsed(command: str):
    words = shlex.split(command)
    assert words[:2] == ["dpplan", "report"]
    return build_parser().parse_args(words[1:])


def test_a_plan_report_prints_a_command_the_cli_parses_back_to_the_same_plan():
    from dpplan.report import build_report
    from dpplan.report.build import FORMATS

    plan = TrainingPlan(
        dataset_size=60000, batch_size=256, noise_multiplier=1.1, epochs=3, delta=1e-5
    )
    report = build_report(plan, tuning_runs=4, title="a 'quoted' title", notes="x y")
    assert set(report.reproducibility.commands) == set(FORMATS) == set(REPORT_FORMATS)
    for fmt, command in report.reproducibility.commands.items():
        args = _parsed(command)
        for flag in PLAN_FLAGS:
            assert getattr(args, flag.field) == getattr(plan, flag.field)  # typed when parsed
        assert (args.tuning_runs, args.title, args.notes) == (4, "a 'quoted' title", "x y")
        assert args.format == fmt


def test_run_and_sweep_commands_parse_and_leave_out_what_is_not_given():
    args = _parsed(report_command({"run": 7, "home": "/tmp/a b", "stored": False, "format": "md"}))
    assert (args.run, args.home, args.stored, args.sweep) == (7, "/tmp/a b", False, None)
    args = _parsed(report_command({"sweep": 3, "stored": True, "title": None}))
    assert (args.sweep, args.stored, args.title) == (3, True, None)


def test_the_parser_takes_every_flag_of_the_table():
    report = build_parser()._subparsers._group_actions[0].choices["report"]
    options = {option for action in report._actions for option in action.option_strings}
    assert {flag.option for flag in (*PLAN_FLAGS, *REPORT_FLAGS)} <= options


def test_a_field_that_is_not_a_report_flag_is_refused():
    with pytest.raises(KeyError):
        report_command({"seeds": "0,1"})
