"""Argument types and early checks shared by the commands, so that a bad option fails at once, by its name.

argparse prefixes a type's error with the option (``argument --seed: must be at least 0, got -1``), which is the
clear one-line error the CLI promises; :func:`check_output_file` and :func:`check_output_folder` run before the
work, so that an unwritable ``--csv`` is reported before an evaluation of many minutes, not after it.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A seed or a count that may be 0 (numpy and gymnasium seeds must be >= 0)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value:g}")
    return value


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a test split that leaves both sides non-empty)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value


def check_output_file(path: str | os.PathLike | None, option: str) -> None:
    """Raise ValueError, naming ``option``, if a file cannot be written at ``path`` (checked before the work)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.csv'}")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
    check_output_folder(path.parent, option)  # the file's folder is made now, as the write would make it


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """Create the folder ``path`` now (ValueError naming ``option`` if that fails) and return it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot create the folder ({error.strerror or error}); "
                         "choose a writable path") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in the folder (permission denied); choose another path")
    return path


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
