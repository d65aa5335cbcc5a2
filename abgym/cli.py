"""The ``abgym`` command.

Each feature owns its sub-commands in its own module, which exposes ``register(subparsers)``; this file only
collects them, so that adding a command never touches another feature's code. A user error (see
:func:`is_user_error`) becomes one line on stderr and exit status 2, never a traceback; set ``ABGYM_TRACEBACK=1``
to see the traceback anyway.
"""
from __future__ import annotations

import argparse
import importlib
import os
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
    "abgym.commands.ope",
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


def is_user_error(error: BaseException) -> bool:
    """The errors a user's input causes, which the CLI reports in one line: the project's documented ``ValueError``
    family (bad settings, malformed files, refused checkpoints), file-system errors (``OSError``: a missing file, an
    unwritable folder), a missing model package (``ModelPackageMissingError``, whose message is the install
    command) and gymnasium's own (an unknown env id). Anything else is a bug and keeps its traceback."""
    if isinstance(error, (ValueError, OSError)):
        return True
    from abgym.llm._runtime import ModelPackageMissingError  # a missing model package: its message has the fix

    if isinstance(error, ModelPackageMissingError):
        return True
    return any(cls.__module__.startswith("gymnasium.error") for cls in type(error).__mro__)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except Exception as error:  # noqa: BLE001 - sorted by is_user_error; the rest is re-raised
        if not is_user_error(error) or os.environ.get("ABGYM_TRACEBACK"):
            raise
        command = " ".join(part for part in (args.command, *_subcommands(args)) if part)
        message = " ".join(str(error).split()) or type(error).__name__  # one line
        print(f"abgym {command}: error: {message}", file=sys.stderr)
        return 2


def _subcommands(args) -> list[str]:
    return [value for key, value in vars(args).items() if key.endswith("_command") and isinstance(value, str)]


if __name__ == "__main__":
    sys.exit(main())
