"""/metrics and /health on one port: one selector thread, bounded in every resource.

The port faces whatever can reach it (Prometheus, the kubelet's probes, and
anything else on the network), so nothing a client does may cost more than a
fixed amount:

* one thread, whatever the number of connections: a non-blocking selector loop
  accepts, reads requests as their bytes arrive, answers and closes. A
  connection that has not finished its request costs a socket and a small
  buffer, never a thread;
* at most --metrics-max-connections open connections. When a new one arrives
  at the cap, the oldest one still sending its request is closed to admit it:
  otherwise a cap full of idle, half-sent requests would lock out the probe
  that matters, and the hostile connections are by construction the old ones;
* a request must arrive complete within --metrics-read-timeout of the
  connection's accept, and its answer be taken within the same time, or the
  connection is closed (slow senders cannot trickle forever);
* request heads over MAX_REQUEST_BYTES are refused (431);
* a client that disconnects, resets or stops reading costs one closed socket,
  no traceback and no log line; running out of file descriptors (EMFILE) sheds
  the oldest incomplete connection or pauses accepting briefly, never spins.
  What is shed is logged through reject_log: at most one line per kind per
  interval.

Responses are HTTP/1.0 with Connection: close (as http.server's were), and
/metrics is prometheus_client's exposition with its content type, unchanged.
"""

import email.utils
import errno
import selectors
import socket
import threading
import time

from absl import flags
from absl import logging
from prometheus_client import exposition

from sidecar import duration
from sidecar import reject_log

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_READ_TIMEOUT_S = 5.0
flags.DEFINE_integer(
    "metrics-max-connections", DEFAULT_MAX_CONNECTIONS,
    "Open connections on the metrics port; at the cap the oldest one that has not sent a complete request is closed.",
)
duration.DEFINE_duration(
    "metrics-read-timeout", f"{DEFAULT_READ_TIMEOUT_S:g}s",
    "A metrics-port connection must send its complete request, and take its answer, within this time.",
)
flags.register_validator("metrics-max-connections", lambda v: 1 <= v <= 10_000, "must be between 1 and 10000")
flags.register_validator("metrics-read-timeout", lambda v: v > 0, "must be positive")

MAX_REQUEST_BYTES = 8192
_ACCEPTS_PER_WAKEUP = 64  # then serve what is readable, so a connect storm cannot starve answers
_EMFILE_PAUSE_S = 0.1
_TICK_S = 0.25  # how often timeouts are checked when nothing happens
_TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Conn:
    __slots__ = ("sock", "deadline", "inbuf", "out", "reading")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.inbuf = b""
        self.out = b""
        self.reading = True


class MetricsServer:
    """Binds in the constructor (so a taken port fails start-up); serves after start()."""

    def __init__(self, host: str, port: int, metrics, is_serving, *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S):
        self._metrics = metrics
        self._is_serving = is_serving
        self._max = max_connections
        self._timeout = read_timeout_s
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            # As http.server did: a restarted sidecar can rebind while old connections sit in TIME_WAIT.
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(1024)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}  # insertion order = accept order: the first reading one is the oldest
        self._listening = False
        self._resume_at = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._listen(True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(10.0)
        for conn in list(self._conns.values()):
            self._close(conn)
        self._selector.close()
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        next_expiry = time.monotonic() + _TICK_S
        while not self._stopping:
            now = time.monotonic()
            timeout = max(0.0, min(next_expiry, self._resume_at if not self._listening else next_expiry) - now)
            for key, mask in self._selector.select(timeout):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.data is None:
                    self._drain_wakeup()
                elif mask & selectors.EVENT_READ and key.data.reading:
                    self._read(key.data)
                elif mask & selectors.EVENT_WRITE:
                    self._write(key.data)
            now = time.monotonic()
            if not self._listening and now >= self._resume_at and not self._stopping:
                self._listen(True)
            if now >= next_expiry:
                self._expire(now)
                next_expiry = now + _TICK_S

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        elif not on and self._listening:
            self._selector.unregister(self._listener)
        self._listening = on

    def _drain_wakeup(self) -> None:
        try:
            self._wake_r.recv(64)
        except OSError:
            pass

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _FD_EXHAUSTED:
                    if self._evict_oldest_reading("out of file descriptors", e.strerror):
                        continue
                    # Nothing to shed: stop polling the listener for a moment rather than spin on it.
                    self._note("out of file descriptors", f"metrics port: out of file descriptors ({e.strerror}) "
                               f"and every connection is being answered; not accepting for {_EMFILE_PAUSE_S:g}s")
                    self._listen(False)
                    self._resume_at = time.monotonic() + _EMFILE_PAUSE_S
                    return
                continue  # ECONNABORTED and friends: that client is gone already
            sock.setblocking(False)
            if len(self._conns) >= self._max and not self._evict_oldest_reading(
                    "connection cap", f"{self._max} open, --metrics-max-connections"):
                sock.close()  # every open connection is being answered: this one waits its turn elsewhere
                continue
            conn = _Conn(sock, time.monotonic() + self._timeout)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_oldest_reading(self, kind: str, why: str) -> bool:
        """Makes room for one connection; False if every open one is being answered."""
        for conn in list(self._conns.values()):
            if not conn.reading:
                continue
            # A complete request already in the kernel's buffer is answered, not
            # shed: a probe that connected just before a burst still gets its answer.
            self._read(conn)
            if conn.sock.fileno() < 0 or not conn.reading:
                if len(self._conns) < self._max:
                    return True
                continue
            self._note(kind, f"metrics port: {kind} ({why}); closed the oldest connection "
                       "that had not sent a complete request")
            self._close(conn)
            return True
        return len(self._conns) < self._max

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._note("read timeout", f"metrics port: closed a connection that did not complete its request "
                       f"(or take its answer) within {duration.format_seconds(self._timeout)} (--metrics-read-timeout)")
            self._close(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0:
            end = conn.inbuf.find(b"\n\n")
        if end < 0:
            if len(conn.inbuf) > MAX_REQUEST_BYTES:
                self._respond(conn, False, 431, b"request head too large\n")
            return
        self._handle(conn, conn.inbuf[:end])

    def _handle(self, conn: _Conn, head: bytes) -> None:
        parts = head.split(b"\n", 1)[0].strip().split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            self._respond(conn, False, 400, b"bad request line\n")
            return
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            self._respond(conn, False, 405, b"only GET and HEAD\n", extra=b"Allow: GET, HEAD\r\n")
            return
        head_only = method == b"HEAD"
        path = target.split(b"?", 1)[0]
        if path == b"/metrics":
            self._respond(conn, head_only, 200, self._metrics.exposition(), exposition.CONTENT_TYPE_LATEST)
        elif path == b"/health":
            if self._is_serving():
                self._respond(conn, head_only, 200, b"OK\n")
            else:
                self._respond(conn, head_only, 503, b"NOT SERVING\n")
        else:
            self._respond(conn, head_only, 404, b"not found; try /metrics or /health\n")

    def _respond(self, conn: _Conn, head_only: bool, code: int, body: bytes, content_type: str = _TEXT,
                 extra: bytes = b"") -> None:
        header = (
            f"HTTP/1.0 {code} {_REASONS[code]}\r\nServer: veid-sidecar\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode("ascii")
        conn.out = header + extra + b"\r\n" + (b"" if head_only else body)
        conn.inbuf = b""
        conn.reading = False
        conn.deadline = time.monotonic() + self._timeout
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)  # usually fits the socket buffer at once

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)  # reset or gone: nothing to tell anyone
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self._conns.pop(fd, None) is not None:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()

    @staticmethod
    def _note(kind: str, message: str) -> None:
        if reject_log.REJECTS.admit(f"metrics port {kind}", message):
            logging.warning("%s", message)
