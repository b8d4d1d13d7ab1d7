"""`nnlite search QUERY` (labels and their WordNet ancestors) or `nnlite search --face IMAGE`."""

from __future__ import annotations

import argparse
import json

from ..errors import LibraryError
from ._types import positive_float, positive_int
from .index_cmd import add_db_argument, db_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search the library by keyword or by face",
                       description='Keyword search ranks images by label score; "cat" also finds tabby, '
                                   "Siamese_cat, ... through WordNet. --face IMAGE finds the library's faces "
                                   "nearest to the most confident face in IMAGE.")
    p.add_argument("query", nargs="?", help="a word or phrase (e.g. cat, dog, golden retriever)")
    p.add_argument("--face", metavar="IMAGE", help="find faces of the person in IMAGE instead")
    add_db_argument(p)
    p.add_argument("--top", type=positive_int, default=None, help="number of results (default 10 faces, 50 images)")
    p.add_argument("--threshold", type=positive_float, default=None, help="face search: only distances <= T")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--analyzer", help=argparse.SUPPRESS)   # tests: another face analyzer
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..library.index import LibraryIndex
    if bool(args.query) == bool(args.face):
        raise LibraryError("give either a keyword QUERY or --face IMAGE")
    with LibraryIndex(db_path(args), readonly=True) as library:
        if args.face:
            return _face(args, library)
        return _keyword(args, library)


def _keyword(args, library) -> int:
    from ..library.search import keyword_search
    results = keyword_search(library, args.query, limit=args.top or 50)
    if args.json:
        print(json.dumps({"query": args.query, "results": [
            {"path": r["path"], "label": r["label"], "score": r["score"]} for r in results]}))
        return 0
    if not results:
        print(f"no images match {args.query!r}")
    for r in results:
        print(f"{r['score']:.3f}  {r['label']:<24} {r['path']}")
    return 0


def _face(args, library) -> int:
    from ..image import load_image
    from ..library.analyze import AnalyzerSpec, get_analyzer
    from ..library.search import face_search
    spec = AnalyzerSpec.of(args.analyzer) if args.analyzer else AnalyzerSpec()
    pixels = load_image(args.face)   # errors name the file (missing, a folder, corrupt, too large)
    faces = get_analyzer(spec).analyze(pixels).faces
    if not faces:
        raise LibraryError(f"{args.face}: no face found to search for")
    query = max(faces, key=lambda face: face.score)
    results = face_search(library, query.descriptor, top=args.top or 10, threshold=args.threshold)
    if args.json:
        print(json.dumps({"results": [{"path": r["path"], "box": r["box"], "distance": r["distance"]}
                                      for r in results]}))
        return 0
    if not results:
        print("no matching faces")
    for r in results:
        print(f"{r['distance']:.3f}  {r['path']}  box [{', '.join(f'{v:.0f}' for v in r['box'])}]")
    return 0

