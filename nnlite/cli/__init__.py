"""The ``nnlite`` command. Each subcommand lives in its own module of this package, which offers
``add_parser(subparsers)``; the parser it adds sets ``func`` to a function taking the parsed
arguments and returning an exit code."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys

from ..errors import NnliteError

# Order here is the order in `nnlite --help`.
COMMANDS = ("classify", "models", "fetch", "faces", "compare", "inspect", "savedmodel", "onnx", "segment",
            "index", "search", "people", "serve")
# Commands that run a model once and exit: they run on the NumPy engine when they read at most NUMPY_IMAGES
# images, else their first run may be tiered (nnlite.ops.precompile.one_shot).
ONE_SHOT = ("classify", "faces", "compare")
NUMPY_IMAGES = 2


class OneLineParser(argparse.ArgumentParser):
    """Option errors as one line, ``nnlite CMD: error: ...`` (exit status 2), like every other error: argparse's
    usage block would bury the line that matters; ``--help`` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def add_command(sub: argparse._SubParsersAction, name: str, doc: str, *, help: str) -> argparse.ArgumentParser:
    """The subparser of command ``name`` whose ``--help`` description is the second paragraph of ``doc``,
    the command module's docstring (its first paragraph is the module's one-line summary): the module's
    documentation and its help text are one text."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")   # no docstrings under python -OO
    description = " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else None
    return sub.add_parser(name, help=help, description=description)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = OneLineParser(
        prog="nnlite", description="Neural-network inference in NumPy + Numba, without TensorFlow.")
    parser.add_argument("--version", action="version", version=f"nnlite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}_cmd":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def _one_shot(args: argparse.Namespace):
    """Set up a command that runs a model once and exits. For one or two images, the NumPy engine: importing
    Numba and loading the compiled kernels from their cache would take longer than the layers themselves, and
    an empty cache would compile for seconds (nnlite.ops.engine). More images, the ArcFace recogniser, or
    ``NNLITE_GEMM`` set: the compiled kernels, a first run tiered (nnlite.ops.precompile); returns that module
    then, else None."""
    from ..ops import engine
    images = len(getattr(args, "images", None) or ()) + sum(hasattr(args, a) for a in ("image", "image1", "image2"))
    # An ONNX ArcFace recogniser's layers (PReLU, batch norm) have no NumPy form: it would load Numba anyway.
    numpy_layers = getattr(args, "recognizer", "faceapi") != "arcface"
    if (images <= NUMPY_IMAGES and numpy_layers and not os.environ.get("NNLITE_GEMM", "").strip()
            and engine.select("numpy")):
        return None
    from ..ops import precompile
    precompile.one_shot()
    return precompile


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # blame the subcommand, whose --help lists its options
        sub = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None), parser)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    precompile = None
    if args.command in ONE_SHOT:
        precompile = _one_shot(args)
    try:
        code = int(args.func(args) or 0)
        if precompile is not None and code == 0:
            precompile.background_compile()   # a tiered first run's fast kernels, for the next runs
        return code
    except NnliteError as exc:
        print(f"nnlite {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"nnlite {args.command}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nnlite {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
