"""`pte-rl`: the command line.

Each subcommand lives in its own module under ``pte_rl/cli/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``. Heavy imports (torch,
transformers, TRL) happen inside the command functions, so `pte-rl score` on a log stays fast.

Exit status: 0 on success; 2 on bad input, with a message naming the file, the line and the field.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pte_rl import __version__
from pte_rl.errors import InputError

# Order is the order of `pte-rl --help`.
COMMAND_MODULES = (
    "hardware",
    "gamma",
    "score",
    "patterns",
    "rollout",
    "tiny",
    "ablate",
    "report",
    "calibrate",
    "latency_study",
    "latency",
    "harness",
)


class CLIError(InputError):
    """Bad input on the command line or in a file it names: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pte-rl",
        description="Price, reward and train tool-using agents by PTE (Prefill Token Equivalents).",
    )
    parser.add_argument("--version", action="version", version=f"pte-rl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"pte_rl.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"pte-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pte-rl score ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


