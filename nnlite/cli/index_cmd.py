"""`nnlite index DIR`: analyze every photo under DIR into the library index (incremental, resumable).

Walk DIR recursively and store, for every image, its hash, size, dimensions, top ImageNet labels and every
face (box, landmarks, descriptor, age, gender, expression) in an SQLite index. Unchanged files are skipped;
each image is committed on its own, so an interrupted run resumes where it stopped; unreadable files are
recorded with their error.

Exit status: 0 when the index is up to date with DIR; 1 when DIR holds no images ("no images found
in DIR"; a missing index is then not created); 2 on an error (one line on stderr, nothing half-written).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import add_command
from ._types import positive_int
from .faces_cmd import add_recognizer_args, analyzer_recognizer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "index", __doc__, help="index a folder of photos (labels, faces) into the library")
    p.add_argument("dir", help="folder of photos")
    add_db_argument(p)
    p.add_argument("--workers", type=positive_int, default=1,
                   help="analyze in N processes (default 1; with --engine dask: local cluster size)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local processes (default) or a dask.distributed cluster (--scheduler; without it a "
                        "local cluster of --workers processes), mapping the same per-image function")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler, e.g. tcp://HOST:8786 (default $DASK_SCHEDULER_ADDRESS); workers must "
                        "read the photos at the same paths as this machine; the index stays here")
    p.add_argument("--crops", action="store_true",
                   help="the folder holds tight face crops: when no face is found, detect again on a padded "
                        "copy, else describe the whole image as one face (score 0)")
    p.add_argument("--model", default="mobilenet_v2", help="ImageNet classifier (default mobilenet_v2)")
    add_recognizer_args(p)
    p.add_argument("--top-k", type=positive_int, default=5, help="labels stored per image (default 5)")
    p.add_argument("--retry-errors", action="store_true", help="analyze again files that failed before")
    p.add_argument("--json", action="store_true", help="print the run's report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    # tests and experiments swap the models for another analyzer ("module:factory")
    p.add_argument("--analyzer", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="index file (default $NNLITE_DB or ~/.cache/nnlite/library.db)")


def db_path(args: argparse.Namespace, create: bool = False):
    """--db as given (its folder must exist), or the default, whose folder is created when ``create``."""
    from ..library.index import default_db
    if args.db:
        return args.db
    path = default_db()
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def check_classifier(name: str) -> None:
    """Refuse a --model that is not an ImageNet classifier before any work starts (else every photo
    would be recorded with the same error)."""
    from ..errors import ModelError
    from ..models import registry
    family = registry.get(name).family   # an unknown name raises, listing the known ones
    if family != "imagenet":
        raise ModelError(f"--model {name!r} is a {family} model, not an ImageNet classifier; "
                         f"`nnlite models --family imagenet` lists them")


def run(args: argparse.Namespace) -> int:
    from ..library.analyze import AnalyzerSpec
    from ..library.indexer import ProgressBar, index_folder
    if args.analyzer:
        spec = AnalyzerSpec.of(args.analyzer, **({"crops": True} if args.crops else {}))
    else:
        check_classifier(args.model)
        spec = AnalyzerSpec.of(None, model=args.model, top_k=args.top_k, **({"crops": True} if args.crops else {}),
                               **analyzer_recognizer(args))
    progress = None if args.quiet else ProgressBar(sys.stderr)
    report = index_folder(args.dir, db_path(args, create=True), workers=args.workers, engine=args.engine,
                          spec=spec, retry_errors=args.retry_errors, progress=progress, scheduler=args.scheduler,
                          on_wait=lambda message: print(f"nnlite index: {message}", file=sys.stderr))
    if report.found == 0:
        print(f"nnlite index: no images found in {args.dir}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0 if report.found else 1
    if report.found == 0:
        return 1
    print(f"{report.found} images: {report.analyzed} analyzed ({report.faces} faces), {report.skipped} "
          f"unchanged, {report.touched} touched, {report.removed} removed, {len(report.errors)} errors "
          f"in {report.seconds:.1f} s")
    for path, error in report.errors:
        print(f"  error: {path}: {error}")
    return 0
