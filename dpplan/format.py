"""How dpplan writes numbers: ε at one precision, non-finite floats as strings in JSON, and
the hash of a value's canonical JSON.

Imports nothing from dpplan, so every layer may use it.

Example:
    >>> epsilon_text(1.234567), epsilon_text(12345.6), epsilon_text(float("inf"))
    ('1.2346', '1.235e+04', 'inf')
    >>> json_safe({"epsilon": float("inf"), "curve": [1.0, float("nan")]})
    {'epsilon': 'inf', 'curve': [1.0, 'nan']}
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

__all__ = ["epsilon_text", "json_digest", "json_float", "json_safe"]


def epsilon_text(value: float) -> str:
    """ε for people: 4 decimals below 1000, else 4 significant digits; ∞ as ``"inf"``.

    An ε is never negative; ``-inf`` (never expected) is shown as ``"inf"`` too.
    """
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def json_float(value: float) -> float | str:
    """``value``, or ``"inf"``, ``"-inf"`` or ``"nan"`` where JSON has no number for it."""
    if math.isfinite(value):
        return value
    return "inf" if value > 0 else ("-inf" if value < 0 else "nan")


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float in it (dicts, lists, tuples) made a string."""
    if isinstance(data, float):
        return json_float(data)
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value) for value in data]
    return data


def json_digest(data: Any) -> str:
    """SHA-256 (64 hex digits) of ``data``'s canonical JSON (sorted keys): the hash of a plan,
    a phased plan, a ledger or a sweep spec (its ``to_dict()``); a stored plan's id is its first
    16 digits."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
