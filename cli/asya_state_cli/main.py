"""The ``asya-state`` console script: one entry point, one module per subcommand.

Owns: argument parsing and dispatch. Each subcommand lives in
``asya_state_cli.commands.<name>`` and exposes ``register(subparsers)``; its
heavy imports happen inside the command so ``asya-state connector`` in a
connector image never imports the function's or another backend's libraries.

Must not: contain a subcommand's logic.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules under asya_state_cli.commands, in help order.
COMMANDS = ("run", "up", "render", "connector", "probe", "bench", "reindex", "redis_copy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asya-state",
        description="Persistent state for stateless actors through plain Python file I/O.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"asya_state_cli.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
