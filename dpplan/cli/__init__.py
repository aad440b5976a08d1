"""The ``dpplan`` command line.

Exit codes: 0 success; 2 invalid input (``error: <field>=<value> ...`` on stderr, or a JSON
``{"error": {...}}`` on stdout with ``--json``); 3 infeasible target; 1 anything else.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from dpplan.cli.common import EXIT_FAILURE, EXIT_INFEASIBLE, EXIT_INVALID, dump
from dpplan.cli.parser import build_parser
from dpplan.errors import (
    DataError,
    DpplanError,
    InfeasibleTargetError,
    MissingDependencyError,
    NotFoundError,
    PlanError,
    StateConflictError,
    StoreError,
    UsageError,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dpplan command line and return its exit code.

    Args:
        argv: the arguments (without the program name); ``None`` reads ``sys.argv``.

    Returns:
        0 on success; 2 for invalid input (``PlanError``, ``UsageError``, ``NotFoundError``,
        ``StateConflictError``, ``MissingDependencyError``, ``DataError``, ``StoreError``); 3
        for an infeasible target; 1 otherwise. With ``--json`` an error prints
        ``{"error": {"type": NAME, "message": ...}}``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv

    def out(text: str) -> None:
        print(text)

    def fail(code: int, error: dict[str, Any]) -> int:
        if as_json:
            out(dump({"error": error}))
        else:
            print(f"error: {error['message']}", file=sys.stderr)
        return code

    parser = build_parser()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            args = parser.parse_args(argv)
            args.argv = argv  # which flags were given (``--resume`` refuses changed ones)
            code = args.handler(args, out)
        except (PlanError, UsageError, NotFoundError, StateConflictError) as exc:
            code = fail(EXIT_INVALID, exc.to_dict())
        except MissingDependencyError as exc:
            code = fail(
                EXIT_INVALID,
                {
                    "type": type(exc).__name__,
                    "package": exc.package,
                    "extra": exc.extra,
                    "message": str(exc),
                },
            )
        except (DataError, StoreError) as exc:
            code = fail(EXIT_INVALID, {"type": type(exc).__name__, "message": str(exc)})
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
        except Exception as exc:
            if os.environ.get("DPPLAN_DEBUG"):
                raise
            code = fail(
                EXIT_FAILURE,
                {
                    "type": type(exc).__name__,
                    "message": f"unexpected {type(exc).__name__}: {exc} "
                    "(set DPPLAN_DEBUG=1 for a traceback, and please report it)",
                },
            )
    seen = set()
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, UserWarning) and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)
    return code
