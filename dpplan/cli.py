"""The ``dpplan`` command line.

Exit codes: 0 success; 2 invalid input (``error: <field>=<value> ...`` on stderr, or a JSON
``{"error": {...}}`` on stdout with ``--json``); 3 infeasible target; 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from dpplan.errors import DpplanError, InfeasibleTargetError, PlanError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3

_PLAN_FLAGS = ("dataset_size", "batch_size", "noise_multiplier", "epochs", "delta", "max_grad_norm")
_SOLVE_TARGETS = {
    "noise-multiplier": "noise_multiplier",
    "epochs": "epochs",
    "batch-size": "batch_size",
}


class _UsageError(Exception):
    """argparse found a usage error; carries its message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # noqa: D102 - argparse hook
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _number(field: str, text: str) -> int | float:
    """Parse a flag value: integers stay ints, anything else numeric becomes a float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise PlanError(field, text, "a number", f"Pass --{field.replace('_', '-')} NUMBER.")


def _add_plan_flags(parser: argparse.ArgumentParser, *, skip: str | None = None) -> None:
    group = parser.add_argument_group("plan")
    helps = {
        "dataset_size": "number of training records N",
        "batch_size": "expected batch size B (Poisson sampling, sample rate B/N)",
        "noise_multiplier": "noise multiplier σ (noise std / clipping norm)",
        "epochs": "number of epochs",
        "delta": "δ of the (ε, δ) guarantee, e.g. 1e-5",
        "max_grad_norm": "per-example clipping norm (default 1.0; does not change ε)",
    }
    for field in _PLAN_FLAGS:
        if field == skip:
            continue
        group.add_argument(f"--{field.replace('_', '-')}", dest=field, metavar="X",
                           help=helps[field])


def _plan_from_args(args: argparse.Namespace, *, placeholder: dict[str, Any] | None = None):
    from dpplan.plan import TrainingPlan

    placeholder = placeholder or {}
    values: dict[str, Any] = {}
    for field in _PLAN_FLAGS:
        text = getattr(args, field, None)
        if field in placeholder:
            values[field] = placeholder[field]
        elif text is None:
            if field == "max_grad_norm":
                continue
            raise PlanError(field, None, "given", f"Pass --{field.replace('_', '-')}.")
        else:
            values[field] = _number(field, text)
    return TrainingPlan(**values)


def _methods(text: str) -> tuple[str, ...]:
    from dpplan.accounting import METHODS

    return METHODS if text == "all" else (text,)


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if value < 1000 else f"{value:.4g}"


def _plan_lines(plan) -> list[str]:
    return [
        f"plan: dataset_size={plan.dataset_size} batch_size={plan.batch_size} "
        f"noise_multiplier={plan.noise_multiplier:g} epochs={plan.epochs} delta={plan.delta:g} "
        f"max_grad_norm={plan.max_grad_norm:g}",
        f"      sample_rate={plan.sample_rate:.6g} steps_per_epoch={plan.steps_per_epoch} "
        f"total_steps={plan.total_steps}",
    ]


def _curve_table(curves) -> list[str]:
    headers = ["epoch", "steps"]
    columns: list[list[float]] = []
    for curve in curves:
        headers.append(f"{curve.method} ε")
        columns.append(list(curve.epsilons))
        if curve.lower is not None:
            headers.append(f"{curve.method} lower")
            columns.append(list(curve.lower))
    widths = [max(7, len(h) + 2) for h in headers]
    lines = ["".join(h.rjust(w) for h, w in zip(headers, widths))]
    plan = curves[0].plan
    for row, epoch in enumerate(curves[0].epochs):
        cells = [str(epoch), str(plan.steps_after(epoch))] + [_fmt(c[row]) for c in columns]
        lines.append("".join(c.rjust(w) for c, w in zip(cells, widths)))
    return lines


def _json_default(value: object) -> object:
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dump(data: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), indent=2, default=_json_default)


def _cmd_epsilon(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan.accounting import compare, epsilon_curve

    plan = _plan_from_args(args)
    if args.method == "all":
        result = compare(plan)
        if args.json:
            data = result.to_dict()
            data["method"] = "all"
            data["epsilon"] = result.headline_epsilon
            out(_dump(data))
            return EXIT_OK
        lines = _plan_lines(plan) + [""] + _curve_table(result.curves) + [""]
        for method, message in result.failures.items():
            lines.append(f"{method}: failed: {message}")
        lines.append(
            f"headline: ε = {_fmt(result.headline_epsilon)} at δ = {plan.delta:g} "
            f"({result.headline_method}, the smallest upper bound)"
        )
        out("\n".join(lines))
        return EXIT_OK
    curve = epsilon_curve(plan, method=args.method)
    if args.json:
        data = {"plan": plan.to_dict(), **curve.to_dict(), "delta": plan.delta}
        out(_dump(data))
        return EXIT_OK
    lines = _plan_lines(plan) + [""] + _curve_table([curve]) + [""]
    lines.append(f"ε = {_fmt(curve.epsilon)} at δ = {plan.delta:g} ({curve.method} upper bound)")
    out("\n".join(lines))
    return EXIT_OK


def _cmd_solve(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan import solve
    from dpplan.accounting import epsilon_curve

    field = _SOLVE_TARGETS[args.target]
    if args.method == "all":
        raise PlanError("method", "all", "one of 'rdp', 'prv', 'pld' for solve",
                        "A solve uses one accounting method.")
    target_epsilon = _number("target_epsilon", args.target_epsilon)
    # The solved field's own value is ignored; give it a valid placeholder.
    placeholder: dict[str, Any] = {}
    if field == "noise_multiplier":
        placeholder["noise_multiplier"] = 1.0
    elif field == "epochs":
        placeholder["epochs"] = 1
    else:
        dataset_size = _number("dataset_size", args.dataset_size) if args.dataset_size else None
        placeholder["batch_size"] = dataset_size if isinstance(dataset_size, int) else 1
    plan = _plan_from_args(args, placeholder=placeholder)
    function = getattr(solve, f"solve_{field}")
    solved = function(plan, target_epsilon=target_epsilon, method=args.method)
    curve = epsilon_curve(solved, method=args.method)
    if args.json:
        data = {
            "solved": field,
            "target_epsilon": target_epsilon,
            "plan": solved.to_dict(),
            **curve.to_dict(),
            "delta": solved.delta,
        }
        out(_dump(data))
        return EXIT_OK
    value = getattr(solved, field)
    lines = [f"solved: {field} = {value:.6g} for target ε <= {target_epsilon:g} "
             f"({args.method})"]
    lines += _plan_lines(solved) + [""] + _curve_table([curve]) + [""]
    lines.append(f"ε = {_fmt(curve.epsilon)} at δ = {solved.delta:g} ({curve.method} upper bound)")
    out("\n".join(lines))
    return EXIT_OK


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="dpplan",
        description="Plan DP-SGD privacy budgets: ε after every epoch (RDP, PRV, PLD) and "
        "solvers for the noise multiplier, epochs or batch size.",
    )
    parser.add_argument("--version", action="version", version=f"dpplan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    eps = commands.add_parser("epsilon", help="ε after every epoch of a plan")
    _add_plan_flags(eps)
    eps.add_argument("--method", choices=("rdp", "prv", "pld", "all"), default="all",
                     help="accounting method (default: all three and the headline)")
    eps.add_argument("--json", action="store_true", help="print JSON")
    eps.set_defaults(handler=_cmd_epsilon)

    slv = commands.add_parser("solve", help="solve for noise multiplier, epochs or batch size")
    slv.add_argument("target", choices=tuple(_SOLVE_TARGETS), help="what to solve for")
    slv.add_argument("--target-epsilon", required=True, metavar="X", help="ε to meet")
    _add_plan_flags(slv)
    slv.add_argument("--method", choices=("rdp", "prv", "pld"), default="prv",
                     help="accounting method (default: prv)")
    slv.add_argument("--json", action="store_true", help="print JSON")
    slv.set_defaults(handler=_cmd_solve)
    return parser


def _version() -> str:
    from dpplan import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dpplan command line and return its exit code.

    Args:
        argv: the arguments (without the program name); ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 2 for invalid input, 3 for an infeasible target, 1 otherwise.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv

    def out(text: str) -> None:
        print(text)

    def fail(code: int, error: dict[str, Any]) -> int:
        if as_json:
            out(_dump({"error": error}))
        else:
            print(f"error: {error['message']}", file=sys.stderr)
        return code

    parser = _build_parser()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            args = parser.parse_args(argv)
            code = args.handler(args, out)
        except _UsageError as exc:
            code = fail(EXIT_INVALID, {"type": "UsageError", "message": str(exc)})
        except PlanError as exc:
            code = fail(EXIT_INVALID, exc.to_dict())
        except InfeasibleTargetError as exc:
            code = fail(EXIT_INFEASIBLE, {"type": type(exc).__name__, "message": str(exc)})
        except DpplanError as exc:
            code = fail(EXIT_FAILURE, {"type": type(exc).__name__, "message": str(exc)})
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILURE
        except KeyboardInterrupt:
            code = fail(130, {"type": "KeyboardInterrupt", "message": "interrupted"})
        except Exception as exc:  # noqa: BLE001 - the outer boundary turns bugs into a message
            if os.environ.get("DPPLAN_DEBUG"):
                raise
            code = fail(EXIT_FAILURE, {
                "type": type(exc).__name__,
                "message": f"unexpected {type(exc).__name__}: {exc} "
                "(set DPPLAN_DEBUG=1 for a traceback, and please report it)",
            })
    seen = set()
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, UserWarning) and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
