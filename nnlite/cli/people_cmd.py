"""`nnlite people`: the library's faces grouped by person, largest group first.

Each person is shown with a representative face (the one nearest the group's mean descriptor) and the
number of faces; ``--thumbnails DIR`` also writes that face as ``DIR/person-N.jpg``. ``--json``:
``{"people": [{"count", "representative": {"path", "box"[, "thumbnail"]}, "faces": [{"path", "box"}]}]}``.
"""

from __future__ import annotations

import argparse
import json
import os

from ..errors import LibraryError
from ._types import positive_float, positive_int
from .index_cmd import add_db_argument, db_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..library.people import DEFAULT_THRESHOLD
    p = sub.add_parser("people", help="group the library's faces by person",
                       description="Cluster the indexed faces by descriptor distance (Chinese whispers on "
                                   "the graph of face pairs closer than --threshold); largest group first.")
    add_db_argument(p)
    p.add_argument("--threshold", type=positive_float, default=DEFAULT_THRESHOLD,
                   help=f"faces closer than this may be the same person (default {DEFAULT_THRESHOLD})")
    p.add_argument("--min-faces", type=positive_int, default=2, help="smallest group shown (default 2)")
    p.add_argument("--thumbnails", metavar="DIR",
                   help="write each person's representative face as DIR/person-N.jpg (DIR must exist)")
    p.add_argument("--json", action="store_true",
                   help='print {"people": [{"count", "representative", "faces": [{"path", "box"}]}]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..library.index import LibraryIndex
    from ..library.people import people
    if args.thumbnails and not os.path.isdir(args.thumbnails):
        raise LibraryError(f"--thumbnails {args.thumbnails}: folder does not exist")
    with LibraryIndex(db_path(args), readonly=True) as library:
        groups = people(library, threshold=args.threshold, min_faces=args.min_faces)
    for number, group in enumerate(groups, 1):
        if args.thumbnails:
            group["representative"]["thumbnail"] = _write_thumbnail(args.thumbnails, number, group["representative"])
    if args.json:
        print(json.dumps({"people": [
            {"count": g["count"],
             "representative": {k: v for k, v in g["representative"].items() if k in ("path", "box", "thumbnail")},
             "faces": [{"path": f["path"], "box": f["box"]} for f in g["faces"]]} for g in groups]}))
        return 0
    if not groups:
        print("no groups of faces")
    for number, group in enumerate(groups, 1):
        rep = group["representative"]
        shown = rep.get("thumbnail") or f"{rep['path']}  box {_box(rep['box'])}"
        print(f"person {number}: {group['count']} faces, e.g. {shown}")
        for face in group["faces"]:
            print(f"  {face['path']}  box {_box(face['box'])}")
    return 0


def _write_thumbnail(folder: str, number: int, face: dict) -> str | None:
    from ..errors import NnliteError
    from ..fsutil import atomic_write_bytes
    from ..library.people import face_thumbnail
    path = os.path.join(folder, f"person-{number}.jpg")
    try:
        data = face_thumbnail(face["path"], face["box"])
    except (OSError, NnliteError):
        return None   # the photo is gone or unreadable since indexing: no thumbnail, the rest still shown
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise LibraryError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _box(box) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
