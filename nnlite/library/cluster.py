"""The Dask engine: the same per-image :func:`~.analyze.analyze_file`, on a ``dask.distributed`` cluster.

- ``scheduler`` (or ``$DASK_SCHEDULER_ADDRESS``), e.g. ``tcp://10.0.0.5:8786``: an existing cluster;
  without one, a ``LocalCluster`` of ``workers`` processes on 127.0.0.1 (the same code path).
- Only paths travel to the workers, and records come back: the SQLite index stays with the client,
  which writes each record, one transaction per image, as soon as it arrives (``as_completed``).
  So workers must read the photos **at the same path** as the client (shared storage mounted
  alike). A worker that cannot read a file records it as unreadable, naming the worker.
- Each worker process builds the analyzer (loads the models) once and keeps it for all its tasks
  (:func:`~.analyze.get_analyzer` caches it per process).
- At most ``2 x`` the cluster's threads tasks are in flight, so memory stays bounded on huge folders
  and a stop (Ctrl-C, an error) abandons little work. Tasks lost with a worker that dies are
  recomputed elsewhere by the scheduler; a photo that kills workers again and again is recorded with
  the error instead of stopping the run.

``dask[distributed]`` is an optional extra (``pip install 'nnlite[dask]'``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from ..errors import LibraryError
from .analyze import AnalyzerSpec, ImageRecord, analyze_file

CONNECT_TIMEOUT = "20s"   # reaching a scheduler that is starting up or far away


def import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise LibraryError("--engine dask needs dask.distributed, which is not installed: "
                           "pip install 'nnlite[dask]' (it brings dask[distributed])") from exc
    return distributed


def check_address(address: str) -> None:
    """Refuse a malformed scheduler address before connecting (Dask's client, half built, would then
    hang on exit)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise LibraryError(f"not a Dask scheduler address: {address!r} (expected tcp://HOST:PORT; {exc})") from None


def analyze_on_worker(path: str, spec: AnalyzerSpec) -> ImageRecord:
    """:func:`analyze_file` on a Dask worker; an unreadable file's error names the worker."""
    record = analyze_file(path, spec)
    if record.error and record.error.startswith("unreadable"):
        try:
            from distributed import get_worker
            where = get_worker().address
        except (ImportError, ValueError):
            where = "a Dask worker"
        record.error += f" (on worker {where}: workers must see the photos at the same path as the client)"
    return record


def dask_records(paths: list[str], spec: AnalyzerSpec, workers: int,
                 scheduler: str | None = None) -> Iterator[ImageRecord]:
    """Records of ``paths`` in completion order, from a Dask cluster (see the module docstring)."""
    distributed = import_distributed()
    from .indexer import single_threaded_children
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    cluster = None
    if address:
        check_address(address)
    try:
        if address:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        else:
            with single_threaded_children():   # one BLAS/Numba thread per worker process
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address=None)
            client = distributed.Client(cluster, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise LibraryError(f"cannot reach the Dask scheduler at {address or 'a local cluster'}: {exc}") from None
    try:
        yield from _stream(client, distributed, paths, spec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _stream(client, distributed, paths: list[str], spec: AnalyzerSpec) -> Iterator[ImageRecord]:
    threads = sum(client.nthreads().values()) or 1
    window = max(4, 2 * threads)
    pending = iter(paths)
    futures: dict = {}   # future -> path

    def submit(count: int) -> list:
        batch = []
        for path in pending:
            key = "nnlite-analyze-" + hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()
            future = client.submit(analyze_on_worker, path, spec, key=key, pure=False)
            futures[future] = path
            batch.append(future)
            if len(batch) == count:
                break
        return batch

    flow = distributed.as_completed(submit(window), loop=client.loop)
    try:
        for future in flow:
            path = futures.pop(future)
            try:
                record = future.result()
            except distributed.KilledWorker as exc:
                record = ImageRecord(path, 0, 0, error=f"the Dask workers analysing it died ({exc})")
            future.release()
            yield record
            for new in submit(1):
                flow.add(new)
    finally:
        if futures:
            client.cancel(list(futures))
