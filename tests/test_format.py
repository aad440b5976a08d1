"""dpplan.format: one ε precision and one encoding of non-finite floats (issue 19)."""

from __future__ import annotations

import json
import math

import pytest

from dpplan.format import epsilon_text, json_float, json_safe


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.0000"), (1.234567, "1.2346"), (999.99994, "999.9999"), (12345.6, "1.235e+04")],
)
def test_epsilon_text_has_four_decimals_below_1000_and_four_digits_above(value, text):
    assert epsilon_text(value) == text


def test_an_infinite_epsilon_is_written_inf():
    assert epsilon_text(math.inf) == "inf"


def test_json_has_a_string_for_every_non_finite_float_and_keeps_the_rest():
    data = {"a": math.inf, "b": [-math.inf, math.nan, 2.5], "c": (1, "x"), "d": None}
    cleaned = json_safe(data)
    assert cleaned == {"a": "inf", "b": ["-inf", "nan", 2.5], "c": [1, "x"], "d": None}
    assert json.loads(json.dumps(cleaned, allow_nan=False)) == cleaned
    assert json_float(0.5) == 0.5


def test_the_cli_json_uses_the_same_encoding(capsys):
    from dpplan.cli.common import dump

    assert json.loads(dump({"epsilon": math.inf})) == {"epsilon": "inf"}
