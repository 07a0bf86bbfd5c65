"""The bounded metrics server on real loopback sockets, without TensorFlow.

Each limit is driven to its edge: the connection cap (oldest incomplete one
evicted, a waiting probe still answered), the read timeout (also for a client
trickling bytes), oversized and malformed requests, and running out of file
descriptors (the loop must shed or pause, not spin).
"""

import os
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import exposition
from prometheus_client.parser import text_string_to_metric_families

from sidecar import http_server
from sidecar import metrics as metrics_lib


@pytest.fixture
def make_server():
    servers = []

    def make(serving: bool = True, **kwargs) -> http_server.MetricsServer:
        m = metrics_lib.Metrics()
        m.record_success(0.001, 73)
        m.record_failure()
        s = http_server.MetricsServer("127.0.0.1", 0, m, lambda: serving, **kwargs)
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def raw(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def get(port: int, path: str, timeout: float = 10.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def half_open(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /health HTTP/1.1\r\n")
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, timeout: float = 10.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_metrics_is_prometheus_text_with_its_content_type(make_server):
    s = make_server()
    status, headers, body = get(s.port, "/metrics")
    assert status == 200 and headers["Content-Type"] == exposition.CONTENT_TYPE_LATEST
    assert int(headers["Content-Length"]) == len(body)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(x.name, tuple(sorted(x.labels.items()))): x.value for x in families["veid_inference"].samples}
    assert samples[("veid_inference_total", (("status", "success"),))] == 1
    assert samples[("veid_inference_total", (("status", "error"),))] == 1


def test_health_and_other_paths(make_server):
    assert get(make_server().port, "/health")[::2] == (200, b"OK\n")
    down = make_server(serving=False)
    assert get(down.port, "/health")[::2] == (503, b"NOT SERVING\n")
    status, headers, body = get(down.port, "/elsewhere")
    assert status == 404 and headers["Content-Type"] == "text/plain; charset=utf-8"


def test_head_bad_method_bad_line_and_huge_head(make_server):
    port = make_server().port
    head = raw(port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n") and b"Content-Length: 3\r\n" in head and head.endswith(b"\r\n\r\n")
    assert raw(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 405 ")
    assert raw(port, b"\x16\x03\x01 hello\r\n\r\n").startswith(b"HTTP/1.0 400 ")  # e.g. a TLS client
    big = raw(port, b"GET /health HTTP/1.1\r\nX: " + b"a" * (2 * http_server.MAX_REQUEST_BYTES))
    assert big.startswith(b"HTTP/1.0 431 ")
    assert get(port, "/health")[0] == 200  # and it serves on


def test_cap_evicts_the_oldest_incomplete_connection(make_server):
    s = make_server(max_connections=4)
    idle = half_open(s.port, 4)
    try:
        for i in range(3):
            assert get(s.port, "/health", timeout=5)[0] == 200
            assert closed_by_server(idle[i], 5)  # the oldest made room for the probe
            idle += half_open(s.port, 1)  # the cap is full again
        assert not any(closed_by_server(c, 0.2) for c in idle[3:])
    finally:
        for c in idle:
            c.close()


def test_a_complete_request_is_answered_not_evicted(make_server):
    s = make_server(max_connections=2)
    waiting = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    waiting.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    burst = half_open(s.port, 20)
    try:
        reply = b""
        while chunk := waiting.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.0 200 OK") and reply.endswith(b"OK\n")
    finally:
        waiting.close()
        for c in burst:
            c.close()


def test_read_timeout_also_for_trickling_clients(make_server):
    s = make_server(read_timeout_s=0.5)
    idle = half_open(s.port, 1)[0]
    trickler = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    t0 = time.monotonic()
    try:
        stop = threading.Event()

        def trickle():
            for b in b"GET /health HTTP/1.1\r\nX-Slow: " + b"y" * 200:
                if stop.wait(0.02):
                    return
                try:
                    trickler.send(bytes([b]))
                except OSError:
                    return

        t = threading.Thread(target=trickle)
        t.start()
        assert closed_by_server(idle, 10)
        assert closed_by_server(trickler, 10)
        stop.set()
        t.join()
        assert time.monotonic() - t0 < 8  # well before the trickle (4+ s) could have finished
    finally:
        idle.close()
        trickler.close()


def test_client_that_resets_or_never_reads_costs_nothing(make_server):
    s = make_server()
    for _ in range(50):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
        c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        c.close()
    assert get(s.port, "/health")[0] == 200
    assert threading.active_count() <= 3  # pytest, the server's loop, maybe the reject-log timer


_CHILD = textwrap.dedent("""
    import resource, sys, time
    from sidecar import http_server, metrics
    s = http_server.MetricsServer("127.0.0.1", 0, metrics.Metrics(), lambda: True,
                                  max_connections=1000)
    s.start()
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(s.port, flush=True)
    time.sleep(120)
""")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_sheds_instead_of_spinning():
    # The child may open 64 descriptors; the connections run it out at once.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable] + (["-S"] if sys.flags.no_site else []) + ["-c", _CHILD, "64"]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        port = int(child.stdout.readline())
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
        socks = half_open(port, 200)  # the kernel completes handshakes the child cannot accept
        cpu0 = _cpu_s(child.pid)
        time.sleep(2.0)
        spent = _cpu_s(child.pid) - cpu0
        assert spent < 0.5, f"{spent:.2f} s of CPU in 2 s while out of descriptors: a busy loop"
        status, _, body = get(port, "/health", timeout=5)
        assert (status, body) == (200, b"OK\n")
        assert child.poll() is None
    finally:
        for c in socks:
            c.close()
        child.kill()
        _, err = child.communicate()
    assert "Traceback" not in err, err
    assert err.count("out of file descriptors") == 1, err  # it did run out, and said so once


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
