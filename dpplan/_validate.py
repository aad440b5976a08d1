"""NaN-safe field validators that raise :class:`~dpplan.errors.PlanError`.

Each validator takes exactly one keyword argument, ``name=value``, so the error names the
field. Comparisons are written so that NaN fails them (``not (value > 0)``), and ``bool``
is refused where a number is expected (``True`` is an ``int`` in Python).
"""

from __future__ import annotations

import math
import numbers

from dpplan.errors import PlanError


def _as_float(name: str, value: object, expected: str, hint: str) -> float:
    """Return ``float(value)``, turning an overflow (e.g. a 400-digit integer) into PlanError."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (OverflowError, ValueError, TypeError):
        raise PlanError(name, value, expected, hint) from None


def _single(kwargs: dict[str, object]) -> tuple[str, object]:
    if len(kwargs) != 1:
        raise TypeError(f"validators take exactly one name=value argument, got {sorted(kwargs)}")
    return next(iter(kwargs.items()))


def integer(*, minimum: int, maximum: int | None = None, hint: str = "", **kwargs: object) -> int:
    """Return the value as an ``int`` if it is an integer in ``[minimum, maximum]``.

    Integral floats such as ``256.0`` are accepted (JSON and sliders produce them);
    ``256.5``, NaN, infinities, bools and strings are refused.

    Raises:
        PlanError: if the value is not an integer in range.
    """
    name, value = _single(kwargs)
    expected = (
        f"an integer in [{minimum}, {maximum}]"
        if maximum is not None
        else (f"an integer >= {minimum}")
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    if isinstance(value, numbers.Integral):
        result = int(value)
    else:
        as_float = _as_float(name, value, expected, hint)
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise PlanError(name, value, expected, hint)
        result = int(as_float)
    if result < minimum or (maximum is not None and result > maximum):
        raise PlanError(name, value, expected, hint)
    return result


def finite_positive(*, maximum: float | None = None, hint: str = "", **kwargs: object) -> float:
    """Return the value as a ``float`` if it is finite, > 0 and (optionally) <= maximum.

    Raises:
        PlanError: if the value is not a finite number in ``(0, maximum]``.
    """
    name, value = _single(kwargs)
    expected = "a finite number > 0" if maximum is None else f"a finite number in (0, {maximum:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    result = _as_float(name, value, expected, hint)
    if not math.isfinite(result) or not (result > 0) or (maximum is not None and result > maximum):
        raise PlanError(name, value, expected, hint)
    return result


def open_interval(*, low: float, high: float, hint: str = "", **kwargs: object) -> float:
    """Return the value as a ``float`` if ``low < value < high``.

    Raises:
        PlanError: if the value is not a number strictly between ``low`` and ``high``.
    """
    name, value = _single(kwargs)
    expected = f"a number in the open interval ({low:g}, {high:g})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    result = _as_float(name, value, expected, hint)
    if not (low < result < high):
        raise PlanError(name, value, expected, hint)
    return result


def closed_interval(*, low: float, high: float, hint: str = "", **kwargs: object) -> float:
    """Return the value as a ``float`` if ``low <= value <= high``.

    Raises:
        PlanError: if the value is not a number in ``[low, high]`` (NaN never is).
    """
    name, value = _single(kwargs)
    expected = f"a number in [{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanError(name, value, expected, hint)
    result = _as_float(name, value, expected, hint)
    if not (low <= result <= high):
        raise PlanError(name, value, expected, hint)
    return result


def choice(*, options: tuple[str, ...], hint: str = "", **kwargs: object) -> str:
    """Return the value if it is one of ``options``.

    Raises:
        PlanError: if the value is not one of the options.
    """
    name, value = _single(kwargs)
    if not isinstance(value, str) or value not in options:
        raise PlanError(name, value, "one of " + ", ".join(repr(o) for o in options), hint)
    return value
