"""Index a folder: walk, decide what changed, analyze (in one of several engines), write.

Roles: *workers* run the pure :func:`~.analyze.analyze_file`; exactly *one writer* (this process)
stores the records, one transaction per image, as they arrive. So a kill at any moment loses only
analyses not yet written, and the next run redoes just those.

Incremental rule: a file whose (size, mtime) equals the stored one is skipped without reading it;
if the stat changed but the content hash did not (a touch, a copy with new times), only the stat is
updated; otherwise it is analyzed again. Files recorded with an error are retried only with
``retry_errors``. Indexed files that disappeared from the folder are removed from the index.

Engines (all write the same index):
  - "local": in this process (workers=1) or a pool of ``workers`` spawned processes;
  - "dask":  a ``dask.distributed`` cluster, given by ``scheduler`` or a LocalCluster of ``workers``
             processes (see :mod:`.cluster`); results stream back to this writer as they finish.

One indexer at a time per index file: a second ``index_folder`` on the same database waits (an
exclusive ``flock`` on ``DB.lock`` beside it, released by the kernel even when the holder is killed)
and then finds the first one's photos already stored, so no photo is analysed twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..errors import LibraryError
from .analyze import AnalyzerSpec, ImageRecord, analyze_file, file_sha256, get_analyzer
from .index import LibraryIndex

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
ENGINES = ("local", "dask")


@dataclass
class IndexReport:
    found: int = 0          # image files under the folder
    analyzed: int = 0       # analyzed and written this run (including errors)
    skipped: int = 0        # unchanged since the last run
    touched: int = 0        # new stat, same content
    removed: int = 0        # gone from the folder, removed from the index
    errors: list[tuple[str, str]] = field(default_factory=list)   # (path, error) written this run
    faces: int = 0          # faces written this run
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"found": self.found, "analyzed": self.analyzed, "skipped": self.skipped,
                "touched": self.touched, "removed": self.removed, "faces": self.faces,
                "errors": [{"path": p, "error": e} for p, e in self.errors], "seconds": round(self.seconds, 3)}


def walk_images(root: Path) -> list[str]:
    """Absolute paths of the image files under ``root`` (by extension, recursively, sorted; hidden
    folders skipped; symlinked folders not followed, so a link loop cannot trap the walk)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(folder, f) for f in sorted(files)
                  if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS and not f.startswith(".")]
    return found


DEFAULT_SPEC = AnalyzerSpec()   # frozen, so one shared default is safe


def index_folder(root: str | Path, db: str | Path, *, workers: int = 1, engine: str = "local",
                 spec: AnalyzerSpec = DEFAULT_SPEC, retry_errors: bool = False,
                 progress: Callable[[int, int, ImageRecord | None], None] | None = None,
                 scheduler: str | None = None, on_wait: Callable[[str], None] | None = None) -> IndexReport:
    """Bring the index at ``db`` up to date with the images under ``root``. A folder without images
    leaves a missing ``db`` uncreated (``report.found == 0``). ``on_wait`` is told when another
    indexer holds the database and this one waits for it."""
    start = time.perf_counter()
    root = Path(root).expanduser().resolve()
    db = Path(db)
    if not root.is_dir():
        raise LibraryError(f"{root} is not a folder")
    if engine not in ENGINES:
        raise LibraryError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers < 1:
        raise LibraryError(f"--workers must be >= 1, got {workers}")
    if scheduler and engine != "dask":
        raise LibraryError("a Dask scheduler address needs --engine dask")
    if not db.parent.is_dir():
        raise LibraryError(f"cannot create library index {db}: folder {db.parent} does not exist")
    report = IndexReport()
    files = walk_images(root)
    report.found = len(files)
    if not files and not db.exists():
        report.seconds = time.perf_counter() - start
        return report
    with _writer_lock(db, on_wait):
        created = not db.exists()
        try:
            with LibraryIndex(db) as library:
                todo = plan(library, str(root), files, report, retry_errors)
                if progress:
                    progress(0, len(todo), None)
                records = run_engine(engine, todo, spec, workers, scheduler)
                try:
                    for done, record in enumerate(records, 1):
                        library.write(record)
                        report.analyzed += 1
                        report.faces += len(record.faces)
                        if record.error:
                            report.errors.append((record.path, record.error))
                        if progress:
                            progress(done, len(todo), record)
                finally:
                    getattr(records, "close", lambda: None)()   # stop workers at once, also on errors
        except BaseException:
            if created and report.analyzed == 0:
                _remove_database(db)   # a run that stored nothing leaves nothing behind
            raise
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _writer_lock(db: Path, on_wait: Callable[[str], None] | None):
    """Exclusive lock on ``DB.lock`` for the whole run (see the module docstring)."""
    try:
        import fcntl
    except ImportError:   # no flock (Windows): SQLite's own locking still keeps the file consistent
        yield
        return
    lock_path = db.with_name(db.name + ".lock")
    if not db.parent.is_dir():
        raise LibraryError(f"cannot create library index {db}: folder {db.parent} does not exist")
    if db.is_dir():
        raise LibraryError(f"cannot use {db} as a library index: it is a folder")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise LibraryError(f"cannot lock library index {db}: {exc.strerror or exc} ({lock_path})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(f"another `nnlite index` is writing {db}; waiting for it to finish "
                        f"(photos it stores are not analysed again)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # releases the lock


def _remove_database(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(f"{db}{suffix}")


def plan(library: LibraryIndex, root: str, files: list[str], report: IndexReport,
         retry_errors: bool) -> list[str]:
    """Files that need analysis; records skips and touches in ``report``, removes vanished files."""
    known = library.known_under(root)
    gone = sorted(set(known) - set(files))
    if gone:
        library.remove(gone)
        report.removed = len(gone)
    todo = []
    for path in files:
        old = known.get(path)
        try:
            stat = os.stat(path)
        except OSError:
            todo.append(path)   # vanished or unreadable: analyze_file records the error
            continue
        if old is None or (old.error and retry_errors):
            todo.append(path)
        elif (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            report.skipped += 1
        elif old.sha256 and old.error is None and _same_content(path, old.sha256):
            library.touch(path, stat.st_size, stat.st_mtime_ns)
            report.touched += 1
        else:
            todo.append(path)
    return todo


def _same_content(path: str, sha256: str) -> bool:
    try:
        return file_sha256(path) == sha256
    except OSError:
        return False


# -- engines ----------------------------------------------------------------------------------------

def run_engine(engine: str, paths: list[str], spec: AnalyzerSpec, workers: int,
               scheduler: str | None = None) -> Iterator[ImageRecord]:
    """Records of ``paths`` in completion order (not input order)."""
    if not paths:
        return iter(())
    if engine == "dask":
        from .cluster import dask_records
        return dask_records(paths, spec, workers, scheduler)
    if workers == 1:
        return (analyze_file(p, spec) for p in paths)
    return _pool_records(paths, spec, workers)


def _pool_records(paths: list[str], spec: AnalyzerSpec, workers: int) -> Iterator[ImageRecord]:
    # spawn, not fork: this process may already run BLAS/Numba threads, and forking a threaded
    # process can deadlock the child. One BLAS/Numba thread per worker: N workers = N cores.
    context = multiprocessing.get_context("spawn")
    with single_threaded_children():
        pool = context.Pool(min(workers, len(paths)), initializer=_preload, initargs=(spec,))
    try:
        yield from pool.imap_unordered(partial(analyze_file, spec=spec), paths, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _preload(spec: AnalyzerSpec) -> None:
    """Pool initializer: load the models before the first task. A failure (e.g. bad weights) must not
    escape here, where multiprocessing would restart the worker forever; the first task raises it
    again, and the writer stops with that error."""
    try:
        get_analyzer(spec)
    except Exception:
        pass


class single_threaded_children:
    """Set the thread-count variables while child processes start (they read them at import)."""
    NAMES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.NAMES}
        os.environ.update({k: "1" for k in self.NAMES})

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- progress ---------------------------------------------------------------------------------------

class ProgressBar:
    """``index  [#####.....]  37/120  31%  2.4 img/s  ETA 0:35  errors 1`` on stderr.
    Redrawn in place on a terminal (at most 10 times a second); one line every 5 s otherwise."""

    def __init__(self, stream=sys.stderr, width: int = 24):
        self.stream, self.width = stream, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.start = self.last = time.perf_counter()
        self.errors = 0

    def __call__(self, done: int, total: int, record: ImageRecord | None) -> None:
        now = time.perf_counter()
        if record is not None and record.error:
            self.errors += 1
        if done == 0:
            self.start = now
        if done not in (0, total) and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        self.stream.write(("\r" if self.tty else "") + self.line(done, total, now - self.start)
                          + ("\n" if not self.tty or done == total else ""))
        self.stream.flush()

    def line(self, done: int, total: int, elapsed: float) -> str:
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 else "--:--"
        return (f"index [{bar}] {done}/{total} {frac:4.0%}  {rate:.1f} img/s  ETA {eta}"
                + (f"  errors {self.errors}" if self.errors else ""))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return (f"{h}:" if h else "") + f"{rest // 60:{'02' if h else ''}d}:{rest % 60:02d}"
