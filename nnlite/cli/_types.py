"""Argument types shared by the subcommands: bad values become a one-line ``nnlite CMD: error: ...``
(exit status 2; see ``nnlite.cli.OneLineParser``) naming the option, the rule and the value found, never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import tempfile


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts: --top, --workers, --max-maps, ...)."""
    value = _parse(text, int, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


def open_unit_float(text: str) -> float:
    """A number strictly between 0 and 1 (detection score thresholds, as the detectors require)."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), found {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (sizes, distance thresholds)."""
    value = _float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, found {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    value = _parse(text, int, "a port number 0..65535")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, found {value}")
    return value


def output_file(text: str) -> str:
    """A file to write: its folder must exist and it must not be a folder. Checked when the command
    starts, so a typo fails at once, not after the models have run (writing is still atomic and
    reports what else can go wrong, e.g. permissions)."""
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text}: directory {folder} does not exist")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a directory")
    try:   # a real probe: permission bits say nothing for root, or on read-only and pseudo file systems
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text}: directory {folder} is not writable "
                                         f"({exc.strerror or exc})") from None
    return text


def _parse(text: str, convert, expected: str):
    """``convert(text)``; a value it cannot read is the one-line error "expected <expected>, found '<text>'"."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None


def _float(text: str) -> float:
    value = _parse(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, found {text!r}")
    return value
