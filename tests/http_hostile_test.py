"""The metrics port against 5,000 idle half-sent requests, on a real sidecar.

Before the bounded server, 3,000 such connections gave the sidecar 3,000
threads, 63,000 lines of BrokenPipeError tracebacks when they closed, and a
/health that did not answer within 5 s. Here, with --metrics-max-connections
well below 5,000: the sidecar holds at most that many of them open (the client
sees the rest closed, the sidecar's descriptor count says the same), /health
answers within Kubernetes' default 1 s probe timeout while they are held and
right after,
the thread count does not move, RSS grows by less than 50 MB, the log gains a
handful of lines and no traceback, and /metrics is still Prometheus' text
format with its exact content type.
"""

import json
import time

import pytest
from prometheus_client import exposition
from prometheus_client.parser import text_string_to_metric_families

from ops import sidecar_process
from tests import hostile_http

HOSTILE = 5000
# The cap under test, well below HOSTILE; a read timeout longer than the test,
# so that only the cap can be what closes the hostile connections.
MAX_CONNECTIONS = 200
FD_SLACK = 10  # the sidecar's own descriptors may move a little (a probe, a log rotation)
PROBE_TIMEOUT_S = 1.0  # Kubernetes' default timeoutSeconds for a probe
PROBES = 10


@pytest.fixture(scope="module")
def sidecar():
    hostile_http.raise_nofile(HOSTILE + 1000)
    with sidecar_process.serving(f"--metrics-max-connections={MAX_CONNECTIONS}", "--metrics-read-timeout=600s") as s:
        yield s


def probe_health(sidecar) -> float:
    """The slowest of PROBES /health probes; each must be a 200 within the probe timeout."""
    worst = 0.0
    for _ in range(PROBES):
        status, _, body, seconds = hostile_http.get(sidecar.metrics_url + "/health", timeout=PROBE_TIMEOUT_S)
        assert (status, body) == (200, b"OK\n")
        assert seconds < PROBE_TIMEOUT_S
        worst = max(worst, seconds)
    return worst


def scrape(sidecar) -> dict:
    status, ctype, body, _ = hostile_http.get(sidecar.metrics_url + "/metrics", timeout=PROBE_TIMEOUT_S)
    assert status == 200
    assert ctype == exposition.CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {"veid_inference", "veid_inference_latency_seconds", "veid_inference_sidecar_healthy"} <= set(families)
    return families


def snapshot(sidecar, label: str) -> dict:
    health_max_s = probe_health(sidecar)
    st = hostile_http.proc_status(sidecar.proc.pid)
    return {"phase": label, "health_max_s": health_max_s, "threads": st["Threads"],
            "rss_mb": st["VmRSS"] / 1024, "fds": st["fds"], "log_lines": len(sidecar.log().splitlines())}


def test_5000_idle_half_requests(sidecar):
    before = snapshot(sidecar, "before")
    scrape(sidecar)
    t0 = time.monotonic()
    with hostile_http.HalfRequests(sidecar.metrics_port, HOSTILE) as hostile:
        opened = time.monotonic() - t0
        assert len(hostile.socks) == HOSTILE, (hostile.refused, hostile.cut)
        during = snapshot(sidecar, "with 5000 half-requests held")
        held = hostile.open_at_server()
        during["open_at_server"] = held
        # The cap is what bounds the server: it holds about MAX_CONNECTIONS of
        # them (the probes just now took a few slots) and has closed the rest.
        assert MAX_CONNECTIONS - PROBES - 2 <= held <= MAX_CONNECTIONS, during
        assert during["fds"] - before["fds"] <= MAX_CONNECTIONS + FD_SLACK, (before, during)
        families = scrape(sidecar)
        assert families["veid_inference_sidecar_healthy"].samples[0].value == 1
    after_close = snapshot(sidecar, "right after they closed")
    rows = [before, during, after_close]
    print(json.dumps({"opened_s": opened, "rows": rows}, indent=1))
    assert after_close["fds"] - before["fds"] <= FD_SLACK, rows
    for row in rows[1:]:
        assert row["threads"] <= before["threads"] + 2, rows  # the reject-log timer may be one
        assert row["rss_mb"] - before["rss_mb"] < 50, rows
        assert row["log_lines"] - before["log_lines"] <= 5, rows
    log = sidecar.log()
    assert "Traceback" not in log and "BrokenPipe" not in log, log[-5000:]


def test_responses_keep_their_shape(sidecar):
    status, ctype, body, _ = hostile_http.get(sidecar.metrics_url + "/nope")
    assert (status, ctype) == (404, "text/plain; charset=utf-8") and b"/metrics" in body
    status, ctype, body, _ = hostile_http.get(sidecar.metrics_url + "/health?verbose=1")
    assert (status, ctype, body) == (200, "text/plain; charset=utf-8", b"OK\n")
    assert sidecar_process.http_get(sidecar.metrics_url + "/metrics")[1] == exposition.CONTENT_TYPE_LATEST


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
