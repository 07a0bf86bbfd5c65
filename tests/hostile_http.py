"""A hostile HTTP client for the metrics port: thousands of idle, half-sent requests.

Used by tests/http_hostile_test.py and bench/hostile.py. Loopback only.
"""

import os
import resource
import socket
import time
import urllib.error
import urllib.request

HALF_REQUEST = b"GET /health HTTP/1.1\r\nHost: sidecar\r\n"  # no blank line: the request never ends


def raise_nofile(needed: int) -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit; AssertionError if that is < `needed`.

    Each held connection is a file descriptor here; a shell's default soft
    limit (often 1024) would cap the test, not the server.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise AssertionError(f"RLIMIT_NOFILE hard limit {hard} < {needed}: cannot hold that many connections")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class HalfRequests:
    """`n` connections to 127.0.0.1:`port`, each having sent HALF_REQUEST, held until close()."""

    def __init__(self, port: int, n: int, connect_timeout: float = 10.0):
        self.socks: list[socket.socket] = []
        self.refused = 0  # connect failed
        self.cut = 0  # the server had already closed it when we sent
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(connect_timeout)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(HALF_REQUEST)
            except ConnectionRefusedError:
                self.refused += 1
                s.close()
                continue
            except OSError:
                self.cut += 1  # not held: the server has closed it
                s.close()
                continue
            self.socks.append(s)

    def open_at_server(self) -> int:
        """How many of the held connections the server still has open (no EOF or reset on our side yet)."""
        n = 0
        for s in self.socks:
            s.setblocking(False)  # a socket with a timeout would wait out EAGAIN
            try:
                n += s.recv(1, socket.MSG_PEEK) != b""  # an early answer: open
            except (BlockingIOError, InterruptedError):
                n += 1
            except OSError:
                pass  # reset
        return n

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []

    def __enter__(self) -> "HalfRequests":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get(url: str, timeout: float = 5.0) -> tuple[int, str, bytes, float]:
    """(status, content type, body, seconds from connect to the whole body); HTTP errors returned."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, r.headers.get("Content-Type", ""), body, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read(), time.monotonic() - t0


def proc_status(pid: int) -> dict[str, int]:
    """Threads, VmRSS (kB) and open file descriptors of a process."""
    out = {"fds": 0}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("Threads", "VmRSS"):
                out[key] = int(line.split()[1])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out
