"""The ``abgym`` command.

Each feature owns its sub-commands in its own module, which exposes ``register(subparsers)``; this file only
collects them, so that adding a command never touches another feature's code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define sub-commands, in the order `abgym --help` lists them.
COMMAND_MODULES = [
    "abgym.commands.envs",
    "abgym.commands.evaluate",
    "abgym.commands.train",
    "abgym.commands.demo",
    "abgym.commands.ranker",
    "abgym.commands.marketing",
    "abgym.commands.rpp",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abgym",
        description="Environments, agents and models for personalized marketing: adaptive A/B testing, "
        "content personalization and LLM prompt personalization.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # that feature's commands are not written yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
