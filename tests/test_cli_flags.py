"""dpplan.cli.flags: the parser is built from the flag tables (issue 19)."""

from __future__ import annotations

import pytest

from dpplan.cli.flags import COMMANDS, RUN_ACTIONS, SOLVE_COMMANDS, flags_of, resumable
from dpplan.cli.parser import build_parser


def _subparser(*names: str):
    parser = build_parser()
    for name in names:
        parser = parser._subparsers._group_actions[0].choices[name]
    return parser


@pytest.mark.parametrize(
    "path, command",
    [((c.name,), c) for c in COMMANDS]
    + [(("solve", c.name), c) for c in SOLVE_COMMANDS]
    + [(("runs", c.name), c) for c in RUN_ACTIONS],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_every_flag_of_a_command_table_is_the_parsers_with_its_default_and_help(path, command):
    actions = {action.dest: action for action in _subparser(*path)._actions}
    for flag in flags_of(command):
        action = actions[flag.field]
        assert action.help == flag.help
        if not flag.positional:
            assert action.option_strings == [flag.option]
        if not flag.switch:
            assert (action.default, action.choices) == (flag.default, flag.choices)
        assert (action.type is None) == (flag.read is None)


def test_a_typed_flag_is_read_when_parsed_and_its_text_default_too():
    args = build_parser().parse_args(
        ["sweep", "--epsilons", "1,2", "--batch-sizes", "256", "--epochs", "3", "--seeds", "4"]
    )
    assert (args.epsilons, args.seeds, args.delta, args.cpus_per_trial) == ([1, 2], [4], 1e-5, 1)


def test_what_may_change_on_resume_is_where_the_data_is_read_and_how_the_work_runs():
    execution = {"ray_address", "gpus_per_trial", "cpus_per_trial", "num_cpus", "worker_data"}
    assert resumable("sweep") == {"resume", "data_dir", "threads", "json", "local", *execution}
    assert resumable("train") == {"resume", "data_dir", "threads", "json"}
