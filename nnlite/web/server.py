"""The web demo's HTTP server: the standard library's HTTP parsing on a bounded worker pool.

Why not a server library: the runtime depends only on the standard library plus numpy, numba,
pillow and h5py, and the limits this demo needs are few and small to write:
- a fixed pool of ``workers`` threads; connections beyond ``workers + queued`` get an immediate 503
  (JSON) instead of a thread each; when connections wait, finished responses close keep-alive ones;
- a listen backlog of 1024 (``request_queue_size``), so bursts of connects do not hit SYN retries;
- timeouts: ``idle_timeout`` between requests on a kept-alive connection, ``read_timeout`` for any
  single read, and a watchdog that closes a connection whose request (line, headers and body)
  takes longer than ``request_deadline`` in total, so a client trickling bytes cannot hold a worker;
- one log line for a client that hung up or stalled, not a traceback.
(A library such as waitress buffers slow clients asynchronously, which scales further, but answers
its own parse errors in plain text; for a demo bound to loopback the pool above is enough.)
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .app import LibraryApp
from .handler import Handler

WORKERS = 16
QUEUED = 64            # accepted connections that may wait for a worker
READ_TIMEOUT = 10.0    # seconds any one read or write on a socket may block
IDLE_TIMEOUT = 5.0     # seconds a kept-alive connection may sit between requests
REQUEST_DEADLINE = 20.0   # seconds from a request's first byte to its last


class PooledHTTPServer(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 1024   # the kernel caps it at net.core.somaxconn
    daemon_threads = True

    def __init__(self, address, handler, workers: int = WORKERS, queued: int = QUEUED,
                 request_deadline: float = REQUEST_DEADLINE, quiet: bool = False):
        self.workers, self.quiet = workers, quiet
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="nnlite-web")
        self.slots = threading.BoundedSemaphore(workers + queued)
        self.active = 0
        self.connections: set[socket.socket] = set()
        self.active_lock = threading.Lock()
        self.watchdog = Watchdog(request_deadline, self._log)
        super().__init__(address, handler)

    # -- connections --------------------------------------------------------------------------------

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self._refuse(request)
            return
        with self.active_lock:
            self.active += 1
            self.connections.add(request)
        self.pool.submit(self._work, request, client_address)

    def _work(self, request, client_address):
        try:
            request.settimeout(READ_TIMEOUT)
            self.watchdog.arm(request, client_address)
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - logged in one line; the worker must live on
            self.handle_error(request, client_address)
        finally:
            self.watchdog.disarm(request)
            self.shutdown_request(request)
            with self.active_lock:
                self.active -= 1
                self.connections.discard(request)
            self.slots.release()

    def busy(self) -> bool:
        """More connections than workers: kept-alive connections should close after their answer."""
        return self.active > self.workers

    def request_read(self, handler) -> None:
        self.watchdog.disarm(handler.connection)

    def next_request(self, handler) -> None:
        """Between two requests on one connection: idle timeout, then a fresh deadline."""
        handler.connection.settimeout(IDLE_TIMEOUT)
        self.watchdog.arm(handler.connection, handler.client_address, extra=IDLE_TIMEOUT)

    def _refuse(self, request) -> None:
        body = b'{"error": "the server is busy: too many connections; try again shortly"}'
        try:
            request.settimeout(1.0)
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            self._log(f"client {client_address[0]}:{client_address[1]} hung up or stalled "
                      f"({type(exc).__name__})")
        else:
            self._log(f"client {client_address[0]}:{client_address[1]}: {type(exc).__name__}: {exc}")

    def _log(self, message: str) -> None:
        if not self.quiet:
            print(f"nnlite serve: {message}", file=sys.stderr, flush=True)

    def server_close(self):
        """Stop at once: open connections are cut, so no worker waits out a read timeout (Ctrl-C exits
        promptly; the interpreter joins the pool's threads on exit)."""
        super().server_close()
        self.watchdog.stop()
        with self.active_lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pool.shutdown(wait=False, cancel_futures=True)


class Watchdog:
    """Closes connections whose request is not fully read by its deadline (one thread for all)."""

    def __init__(self, deadline: float, log):
        self.deadline, self.log = deadline, log
        self.armed: dict[socket.socket, tuple[float, tuple]] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._run, name="nnlite-web-watchdog", daemon=True).start()

    def arm(self, conn, client_address, extra: float = 0.0) -> None:
        with self.lock:
            self.armed[conn] = (time.monotonic() + self.deadline + extra, client_address)

    def disarm(self, conn) -> None:
        with self.lock:
            self.armed.pop(conn, None)

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.wait(0.25):
            now = time.monotonic()
            with self.lock:
                late = [(c, a) for c, (t, a) in self.armed.items() if t < now]
                for conn, _ in late:
                    del self.armed[conn]
            for conn, address in late:
                self.log(f"client {address[0]}:{address[1]} too slow: request not complete after "
                         f"{self.deadline:g} s, connection closed")
                try:
                    conn.shutdown(socket.SHUT_RDWR)   # the worker's blocked read returns at once
                except OSError:
                    pass


class _Handler(Handler):
    idle = False   # waiting for the next request on a kept-alive connection

    def handle(self):
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.server.next_request(self)
            self.idle = True
            self.handle_one_request()

    def log_error(self, format, *args):
        if self.idle and format.startswith("Request timed out"):
            return   # a browser keeping a connection open that it no longer needs: not an event
        super().log_error(format, *args)

    def parse_request(self):
        self.idle = False
        self.connection.settimeout(READ_TIMEOUT)
        ok = super().parse_request()
        if ok and self.headers.get("Content-Length") is None and self.headers.get("Transfer-Encoding") is None:
            self.server.request_read(self)   # no body: the request is complete
        return ok


def make_server(app: LibraryApp, host: str = "127.0.0.1", port: int = 8080, quiet: bool = False,
                allow_hosts: tuple[str, ...] = (), workers: int = WORKERS, queued: int = QUEUED,
                request_deadline: float = REQUEST_DEADLINE) -> PooledHTTPServer:
    """A server bound to (host, port) (port 0: any free port); call serve_forever() or use serve_in_thread.
    Requests are answered only for Host headers naming an IP address, localhost, ``host`` or ``allow_hosts``."""
    names = {"localhost", host.lower(), *(h.lower().rstrip(".") for h in allow_hosts)}
    if host in ("0.0.0.0", "::", ""):
        names.add(socket.gethostname().lower())
    handler = type("LibraryHandler", (_Handler,), {"app": app, "quiet": quiet, "allowed_hosts": frozenset(names)})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("Server", (PooledHTTPServer,), {"address_family": family})
    return server_class((host, port), handler, workers=workers, queued=queued, request_deadline=request_deadline,
                        quiet=quiet)


def serve_in_thread(server: PooledHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
