"""`nnlite models`: every registered model, its input size, preprocessing, parameters and weights."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models",
                       description="List every registered model: name, family, input size, parameter "
                                   "count (after batch-norm folding), whether its weights are on this "
                                   "machine, and its preprocessing.")
    p.add_argument("--family", help="only this family (imagenet, faceapi)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)


def rows(family: str | None = None) -> list[dict]:
    from ..errors import ModelError
    from ..models import registry
    families = sorted({spec.family for spec in registry.specs()})
    if family and family not in families:
        raise ModelError(f"unknown model family {family!r}; families: {', '.join(families)}")
    out = []
    for spec in registry.specs():
        if family and spec.family != family:
            continue
        out.append({"name": spec.name, "family": spec.family, "description": spec.description,
                    "input_size": list(spec.input_size) if spec.input_size else None,
                    "preprocessing": spec.preprocessing, "params": spec.params,
                    "weights_present": bool(spec.weights_present())})
    return out


def _weights(row: dict) -> str:
    """present; else "fetch" where `nnlite fetch NAME` downloads them; else missing."""
    from ..fetch import REMOTE_WEIGHTS
    return "present" if row["weights_present"] else "fetch" if row["name"] in REMOTE_WEIGHTS else "missing"


def _table(items: list[dict]) -> str:
    head = ("name", "family", "input", "params", "weights", "preprocessing")
    lines = [(r["name"], r["family"], "x".join(map(str, r["input_size"])) if r["input_size"] else "any",
              f"{r['params']:,}" if r["params"] is not None else "?",
              _weights(r), r["preprocessing"]) for r in items]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), *(fmt(line) for line in lines)])


def run(args: argparse.Namespace) -> int:
    items = rows(args.family)
    print(json.dumps(items, indent=1) if args.json else _table(items))
    return 0
