"""`nnlite search WORDS` (labels, their WordNet ancestors, and face words) or `nnlite search --face IMAGE`.

Keyword search: every word must match. "cat" also finds tabby, Siamese_cat, ... through WordNet;
person/people/face/portrait, man/woman, child/kid/baby, group and happy/smiling/sad/angry/surprised are
read from the faces ("dog person": a dog and a face). --face IMAGE finds the library's faces of the person
in IMAGE (its most confident face), grouped per photo.

Keyword ``--json``: ``{"query", "terms": [...], "results": [{"path", "label", "score", "matched"}]}``;
``terms`` says how each word was read (a face word and its rule, or an ImageNet label with the number
of classes it covers) and each result's ``matched`` how it satisfied each term.

Face ``--json``: ``{"query": {"path", "box", "recognizer"}, "threshold", "results": [{"path", "box", "distance",
"match"}], "photos": [{"path", "distance", "match", "faces": [{"box", "distance", "match"}]}]}``;
``results`` nearest first, ``photos`` the same hits grouped per photo.
"""

from __future__ import annotations

import argparse
import json

from ..errors import LibraryError
from . import add_command
from ._types import positive_float, positive_int
from .faces_cmd import add_recognizer_args, analyzer_recognizer
from .index_cmd import add_db_argument, db_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "search", __doc__, help="search the library by keyword or by face")
    p.add_argument("query", nargs="*", help="words (e.g. cat, dog person, woman happy, golden retriever)")
    p.add_argument("--face", metavar="IMAGE", help="find faces of the person in IMAGE instead")
    add_db_argument(p)
    p.add_argument("--top", type=positive_int, default=None,
                   help="number of results (default 10 faces, 50 images)")
    p.add_argument("--threshold", type=positive_float, default=None,
                   help="face search: same person at distance <= T (default: the recognizer's, 0.6 for "
                        "face-api.js); faces beyond it are left out unless --all")
    p.add_argument("--all", action="store_true", help="face search: also list faces beyond the threshold, marked")
    p.add_argument("--crops", action="store_true",
                   help="face search: IMAGE is a tight face crop; skip detection, use the whole image")
    add_recognizer_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--analyzer", help=argparse.SUPPRESS)   # tests: another face analyzer
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..library.index import LibraryIndex
    query = " ".join(args.query).strip()
    if bool(query) == bool(args.face):
        raise LibraryError("give either a keyword QUERY or --face IMAGE")
    if not args.face and (args.all or args.crops):
        raise LibraryError("--all and --crops belong to --face searches")
    with LibraryIndex(db_path(args), readonly=True) as library:
        if args.face:
            return _face(args, library)
        return _keyword(args, library, query)


def _keyword(args, library, query: str) -> int:
    from ..library.words import keyword_search, parse_query
    terms = parse_query(query)
    results = keyword_search(library, query, limit=args.top or 50)
    if args.json:
        print(json.dumps({"query": query, "terms": [_term_json(t) for t in terms], "results": [
            {"path": r["path"], "label": r["label"], "score": r["score"], "matched": r["matched"]}
            for r in results]}))
        return 0
    if not results:
        print(f"no images match {query!r}")
    for r in results:
        why = ", ".join(m.get("label") or f"{m['faces']} face{'s' * (m['faces'] > 1)} ({m['term']})"
                        for m in r["matched"])
        print(f"{r['score']:.3f}  {why:<32} {r['path']}")
    return 0


def _term_json(term: dict) -> dict:
    if term["kind"] == "face":
        return {"term": term["term"], "kind": "face", "rule": term["rule"], "meaning": term["meaning"]}
    return {"term": term["term"], "kind": "label", "classes": len(term["wnids"])}


def _face(args, library) -> int:
    from ..library.analyze import AnalyzerSpec
    from ..library.search import search_by_face
    spec = AnalyzerSpec.of(args.analyzer) if args.analyzer else AnalyzerSpec.of(None, **analyzer_recognizer(args))
    found = search_by_face(library, args.face, spec, crops=args.crops, top=args.top or 10,
                           threshold=args.threshold, everything=args.all)
    query, threshold, results, photos = found["query"], found["threshold"], found["results"], found["photos"]
    if args.json:
        print(json.dumps({
            "query": {"path": args.face, "box": list(query.box), "recognizer": query.recognizer},
            "threshold": threshold,
            "results": [{"path": r["path"], "box": r["box"], "distance": r["distance"], "match": r["match"]}
                        for r in results],
            "photos": [{"path": p["path"], "distance": p["distance"], "match": p["match"],
                        "faces": [{"box": f["box"], "distance": f["distance"], "match": f["match"]}
                                  for f in p["faces"]]} for p in photos]}))
        return 0
    if not photos:
        print(f"no faces within distance {threshold} (--all lists the nearest anyway)")
    for p in photos:
        mark = "" if p["match"] else f"   (beyond {threshold}: probably someone else)"
        boxes = "  ".join(f"[{', '.join(f'{v:.0f}' for v in f['box'])}] {f['distance']:.3f}" for f in p["faces"])
        print(f"{p['distance']:.3f}  {p['path']}  {boxes}{mark}")
    return 0
