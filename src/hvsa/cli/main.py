"""Entry point of the ``hvsa`` command.

Each sub-command lives in its own module of this package with two functions:
``add_parser(subparsers)`` declares its arguments (no heavy imports) and ``run(args)`` does the
work and returns an exit code. Exit codes: 0 ok, 2 bad input or usage (one-line message), 1
internal error. ``HVSA_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS"]

# Sub-command modules of hvsa.cli, in the order `hvsa --help` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "synth",
    "simulate",
    "serve",
    "export",
    "cost",
    "flow_eval",
    "bench",
    "pretrain",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hvsa",
        description="Label every pixel of every frame of a video while a person annotates a small,"
        " actively chosen part of it.",
    )
    from hvsa import __version__

    parser.add_argument("--version", action="version", version=f"hvsa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"hvsa.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    debug = os.environ.get("HVSA_DEBUG", "") not in ("", "0")
    from hvsa.errors import InputError

    try:
        if getattr(args, "threads", None) is not None:
            from hvsa.threads import limit_threads

            limit_threads(args.threads)
        return int(args._run(args) or 0)
    except InputError as e:
        if debug:
            raise
        print(f"hvsa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hvsa: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that maps everything to an exit code
        if debug:
            raise
        print(f"hvsa: internal error: {type(e).__name__}: {e} (HVSA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def console_main() -> None:
    sys.exit(main())
