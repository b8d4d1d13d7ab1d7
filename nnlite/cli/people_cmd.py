"""`nnlite people`: the library's faces grouped by person, largest group first."""

from __future__ import annotations

import argparse
import json

from ._types import positive_int
from .index_cmd import add_db_argument, db_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..library.people import DEFAULT_THRESHOLD
    p = sub.add_parser("people", help="group the library's faces by person",
                       description="Cluster the indexed faces by descriptor distance (Chinese whispers on "
                                   "the graph of face pairs closer than --threshold); largest group first.")
    add_db_argument(p)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"faces closer than this may be the same person (default {DEFAULT_THRESHOLD})")
    p.add_argument("--min-faces", type=positive_int, default=2, help="smallest group shown (default 2)")
    p.add_argument("--json", action="store_true", help='print {"people": [{"faces": [{"path", "box"}]}]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..library.index import LibraryIndex
    from ..library.people import people
    with LibraryIndex(db_path(args), readonly=True) as library:
        groups = people(library, threshold=args.threshold, min_faces=args.min_faces)
    if args.json:
        print(json.dumps({"people": [{"faces": [{"path": f["path"], "box": f["box"]} for f in g["faces"]]}
                                     for g in groups]}))
        return 0
    if not groups:
        print("no groups of faces")
    for number, group in enumerate(groups, 1):
        print(f"person {number}: {len(group['faces'])} faces")
        for face in group["faces"]:
            print(f"  {face['path']}  box {_box(face['box'])}")
    return 0


def _box(box) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
