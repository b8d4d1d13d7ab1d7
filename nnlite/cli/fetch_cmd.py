"""``nnlite fetch MODEL [--url URL] [--md5 HEX] [--force]``: download weights nnlite cannot bundle."""

from __future__ import annotations

import argparse
import sys

from ..errors import NnliteError
from ..fetch import REMOTE_WEIGHTS, fetch
from ..paths import models_cache_dir


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fetch", help="download a model's official weights file into the models cache",
        description="Download the official weights of MODEL (" + ", ".join(sorted(REMOTE_WEIGHTS)) +
                    ") into the models cache ($NNLITE_HOME/models). Needs internet unless --url names a "
                    "local copy (file:///path/to/file.h5).")
    parser.add_argument("model", metavar="MODEL", type=_fetchable,
                        help="one of: " + ", ".join(sorted(REMOTE_WEIGHTS)))
    parser.add_argument("--url", help="download from this URL (a mirror or file:// URL) instead")
    parser.add_argument("--md5", help="expected MD5 of the file (default: the official file's; "
                                      "'' to skip the check)")
    parser.add_argument("--force", action="store_true", help="download again even if the file is present")
    parser.set_defaults(func=run)
    return parser


def _fetchable(name: str) -> str:
    if name in REMOTE_WEIGHTS:
        return name
    fetchable = ", ".join(sorted(REMOTE_WEIGHTS))
    from ..models import registry
    try:
        spec = registry.get(name)
    except NnliteError:
        raise argparse.ArgumentTypeError(f"unknown model {name!r}; fetchable: {fetchable}") from None
    if spec.weights_present():
        raise argparse.ArgumentTypeError(f"{name}'s weights are bundled with nnlite, nothing to fetch "
                                         f"(fetchable: {fetchable})")
    raise argparse.ArgumentTypeError(f"{name} has no download; its weights are bundled with nnlite but missing "
                                     f"here (`nnlite models` says where; fetchable: {fetchable})")


def run(args) -> int:
    remote = REMOTE_WEIGHTS[args.model]
    target = models_cache_dir() / remote.filename
    if target.exists() and not args.force:
        print(f"{args.model}: already present (--force downloads it again)", file=sys.stderr)
    else:
        print(f"fetching {args.model}: {args.url or remote.url}", file=sys.stderr)
    path = fetch(args.model, url=args.url, md5=args.md5, force=args.force)
    print(path)
    return 0
