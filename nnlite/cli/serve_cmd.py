"""`nnlite serve`: the web demo over a library index (upload, keyword search, same-person search)."""

from __future__ import annotations

import argparse

from ..errors import NnliteError
from ._types import port, positive_float
from .index_cmd import add_db_argument, check_classifier, db_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web demo: analyze uploads, search the library",
                       description="Serve a page (and its JSON API, see nnlite/web/API.md) to upload a photo "
                                   "and see its labels and faces, search the index by keyword, and click a "
                                   "face to find the same person. Only files in the index are served.")
    add_db_argument(p)
    p.add_argument("--port", type=port, default=8080, help="port (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                       "0.0.0.0 for every interface, e.g. in a container)")
    p.add_argument("--max-upload-mb", type=positive_float, default=10.0, help="largest upload accepted (default 10)")
    p.add_argument("--max-megapixels", type=positive_float, default=40.0,
                   help="largest decoded upload in megapixels (default 40; larger answers 413)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to this host name (repeatable); IP addresses, "
                        "localhost and --host are always accepted")
    p.add_argument("--model", default="mobilenet_v2", help="ImageNet classifier for uploads")
    p.add_argument("--analyzer", help=argparse.SUPPRESS)   # tests: another analyzer ("module:factory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..library.analyze import AnalyzerSpec
    from ..web.app import LibraryApp
    from ..web.server import make_server
    if not args.analyzer:
        check_classifier(args.model)
    spec = AnalyzerSpec.of(args.analyzer) if args.analyzer else AnalyzerSpec.of(None, model=args.model, top_k=5)
    app = LibraryApp(db_path(args), spec, max_upload=int(args.max_upload_mb * 1024 * 1024),
                     max_pixels=int(args.max_megapixels * 1e6))
    try:
        server = make_server(app, args.host, args.port, allow_hosts=tuple(args.allow_host))
    except OSError as exc:   # port taken, a privileged port, an unknown host name
        app.close()
        raise NnliteError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"nnlite serve: http://{args.host}:{server.server_address[1]}/  (index {app.library.path}; Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
    return 0
