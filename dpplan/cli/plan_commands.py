"""``dpplan epsilon`` and ``dpplan solve``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dpplan.cli.common import EXIT_OK, dump, output_every, plan_or_file, plan_values
from dpplan.cli.render import curve_table, plan_lines
from dpplan.errors import (
    PlanError,
)
from dpplan.format import epsilon_text


def cmd_epsilon(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    if args.method == "rdp":  # RDP needs only dp-accounting's rdp module (~1 s less import)
        from dpplan.accounting._imports import defer_dp_accounting_init

        defer_dp_accounting_init()
    from dpplan.accounting import compare, epsilon_curve

    plan = plan_or_file(args)
    every = output_every(args)
    if args.method == "all":
        result = compare(plan)
        if args.json:
            data = result.to_dict()
            data["method"] = "all"
            data["epsilon"] = result.headline_epsilon
            out(dump(data))
            return EXIT_OK
        if args.brief:
            lines = [f"{c.method}: ε = {epsilon_text(c.epsilon)}" for c in result.curves]
        else:
            lines = plan_lines(plan) + [""] + curve_table(result.curves, every) + [""]
        for method, message in result.failures.items():
            lines.append(f"{method}: failed: {message}")
        lines.append(
            f"headline: ε = {epsilon_text(result.headline_epsilon)} at δ = {plan.delta:g} "
            f"({result.headline_method}, the smallest upper bound)"
        )
        out("\n".join(lines))
        return EXIT_OK
    curve = epsilon_curve(plan, method=args.method)
    if args.json:
        data = {"plan": plan.to_dict(), **curve.to_dict(), "delta": plan.delta}
        out(dump(data))
        return EXIT_OK
    lines = [] if args.brief else plan_lines(plan) + [""] + curve_table([curve], every) + [""]
    lines.append(
        f"ε = {epsilon_text(curve.epsilon)} at δ = {plan.delta:g} ({curve.method} upper bound)"
    )
    out("\n".join(lines))
    return EXIT_OK


def cmd_solve(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from dpplan import solve
    from dpplan.accounting import epsilon_curve

    field = args.target.replace("-", "_")  # the target names the plan field it solves for
    if args.method == "all":
        raise PlanError(
            "method",
            "all",
            "one of 'best', 'rdp', 'prv', 'pld' for solve",
            "A solved plan is certified by one method; 'best' picks the most favourable.",
        )
    target_epsilon = args.target_epsilon
    every = output_every(args)
    if getattr(args, "plan", None) is None:  # the other fields' flags; no value to solve
        solution = solve.solve_fields(
            plan_values(args, skip=field),
            field=field,
            target_epsilon=target_epsilon,
            method=args.method,
        )
    else:  # a plan file is a whole plan; its value of the solved field is not used
        plan = plan_or_file(args)
        if hasattr(plan, "phases"):
            return _solve_phased(args, plan, field=field, target_epsilon=target_epsilon, out=out)
        solution = solve.solve_plan(
            plan, field=field, target_epsilon=target_epsilon, method=args.method
        )
    solved = solution.plan
    curve = epsilon_curve(solved, method=solution.method)
    if args.json:
        found = solution.to_dict()
        found.pop("plan")
        data = {
            **found,
            "plan": solved.to_dict(),
            **curve.to_dict(),
            "warnings": [*solution.warnings, *curve.warnings],
            "delta": solved.delta,
        }
        out(dump(data))
        return EXIT_OK
    how = (
        f"{solution.method}, the most favourable of {', '.join(solve.BEST_ORDER)}"
        if solution.requested_method == solve.BEST
        else solution.method
    )
    lines = [
        f"solved: {field} = {solution.value:.6g} for target ε <= {target_epsilon:g} ({how})",
        solution.bound_note(),
    ]
    lines += [f"warning: {message}" for message in solution.warnings]
    if not args.brief:
        lines += plan_lines(solved) + [""] + curve_table([curve], every) + [""]
    lines.append(
        f"ε = {epsilon_text(curve.epsilon)} at δ = {solved.delta:g} ({curve.method} upper bound)"
    )
    out("\n".join(lines))
    return EXIT_OK


def _solve_phased(args, plan, *, field: str, target_epsilon: float, out) -> int:
    """``dpplan solve`` for a phased ``--plan FILE``: one σ factor, or the last phase's epochs."""
    from dpplan import solve
    from dpplan.accounting import compare, epsilon_curve

    if field == "batch_size":
        raise PlanError(
            "plan",
            args.plan,
            "a single-phase plan for 'solve batch-size'",
            "Phased plans solve noise-multiplier (one factor for every phase) or epochs "
            "(of the last phase).",
        )
    function = getattr(solve, f"solve_{field}")
    solved = function(plan, target_epsilon=target_epsilon, method=args.method)
    if args.method == solve.BEST:
        curve = min(compare(solved).curves, key=lambda c: c.epsilon)
    else:
        curve = epsilon_curve(solved, method=args.method)
    if args.json:
        data = {
            "solved": field,
            "target_epsilon": target_epsilon,
            "requested_method": args.method,
            "method": curve.method,
            "plan": solved.to_dict(),
            **curve.to_dict(),
            "delta": solved.delta,
        }
        out(dump(data))
        return EXIT_OK
    value = (
        solved.phases[0].noise_multiplier / plan.phases[0].noise_multiplier
        if field == "noise_multiplier"
        else solved.phases[-1].epochs
    )
    what = "noise factor (every phase)" if field == "noise_multiplier" else "last phase epochs"
    lines = [f"solved: {what} = {value:.6g} for target ε <= {target_epsilon:g} ({curve.method})"]
    if not args.brief:
        lines += plan_lines(solved) + [""] + curve_table([curve], output_every(args)) + [""]
    lines.append(
        f"ε = {epsilon_text(curve.epsilon)} at δ = {solved.delta:g} ({curve.method} upper bound)"
    )
    out("\n".join(lines))
    return EXIT_OK
