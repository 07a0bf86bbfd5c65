"""Inference counters for Prometheus and for the GetMetrics RPC (sidecar/http_server.py serves them).

Both views are fed by the same record_* calls so they cannot disagree. The
registry is private (not prometheus_client's global one) so /metrics carries
exactly the sidecar's families and nothing a library registered on import.
"""

import bisect
import collections
import math
import threading
import time

import prometheus_client
from prometheus_client import exposition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.utils import floatToGoString

# Sub-millisecond resolution where the sidecar lives, up to the 2 s default timeout.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
LATENCY_WINDOW = 1024

# *_created samples would add a second series per family and are meaningless
# for a process-lifetime counter.
prometheus_client.disable_created_metrics()


class Metrics:
    """Thread-safe; the record_* methods are on every request's path, so they stay small."""

    def __init__(self, window: int = LATENCY_WINDOW):
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        r = self.registry
        total = prometheus_client.Counter(
            "veid_inference", "ComputeScore calls by outcome.", ["status"], registry=r
        )
        self._ok_counter = total.labels(status="success")
        self._error_counter = total.labels(status="error")
        self._latency = prometheus_client.Histogram(
            "veid_inference_latency_seconds",
            "ComputeScore latency of successful calls (validation, queueing, inference, scoring).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._rejections = prometheus_client.Counter(
            "veid_inference_model_rejections",
            "Upgrade-plan entries (or whole plans: reason invalid_plan / history_rewrite) that failed their checks.",
            ["version", "reason"],
            registry=r,
        )
        self._healthy = prometheus_client.Gauge(
            "veid_inference_sidecar_healthy", "1 while serving, 0 before ready and while shutting down.", registry=r
        )
        self._scores = prometheus_client.Histogram(
            "veid_inference_score_distribution", "Scores (0-100) returned by ComputeScore.",
            buckets=SCORE_BUCKETS, registry=r,
        )
        tls_reloads = prometheus_client.Counter(
            "veid_tls_reloads", "Re-reads of the TLS files (on change or SIGHUP) by outcome.", ["result"], registry=r
        )
        self._tls_reload_ok, self._tls_reload_error = tls_reloads.labels("success"), tls_reloads.labels("error")
        self._tls_stale = prometheus_client.Gauge(
            "veid_tls_material_stale",
            "1 while the TLS files on disk were refused and the previous certificate is still served.", registry=r
        )
        self._lock = threading.Lock()
        self._ok = 0
        self._failed = 0
        self._window = collections.deque(maxlen=window)
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # last one is +Inf
        self.last_success: float | None = None  # time.time()

    def record_success(self, latency_s: float, score: int) -> None:
        self._ok_counter.inc()
        self._latency.observe(latency_s)
        self._scores.observe(score)
        i = bisect.bisect_left(LATENCY_BUCKETS, latency_s)  # buckets are "<= le"
        with self._lock:
            self._ok += 1
            self._window.append(latency_s)
            self._bucket_counts[i] += 1
            self.last_success = time.time()

    def record_failure(self) -> None:
        self._error_counter.inc()
        with self._lock:
            self._failed += 1

    def record_rejection(self, version: str, reason: str) -> None:
        self._rejections.labels(version=version, reason=reason).inc()

    def watch_plan(self, statuses, highest_height, alert_blocks: int, plan_refused=lambda: False) -> None:
        """Publishes the upgrade plan's entries at every scrape.

        `statuses()` returns sidecar.registry.EntryStatus values and
        `highest_height()` the highest block height requested (-1 before any);
        `alert_blocks` is how many blocks before its activation an entry must
        be verified (the UpgradeModelNotVerified alert compares against it);
        `plan_refused()` is true while the plan file on disk was refused.
        """
        self.registry.register(_PlanCollector(statuses, highest_height, alert_blocks, plan_refused))

    def record_tls_reload(self, ok: bool) -> None:
        (self._tls_reload_ok if ok else self._tls_reload_error).inc()
        self._tls_stale.set(0 if ok else 1)

    def set_healthy(self, healthy: bool) -> None:
        self._healthy.set(1 if healthy else 0)

    def snapshot(self) -> dict:
        """Totals, window statistics (ms) and the cumulative latency histogram keyed like `le`."""
        with self._lock:
            ok, failed = self._ok, self._failed
            window = sorted(self._window)
            counts = list(self._bucket_counts)
        histogram, running = {}, 0
        for bound, n in zip(LATENCY_BUCKETS + (math.inf,), counts):
            running += n
            histogram[floatToGoString(bound)] = running
        avg = p99 = 0.0
        if window:
            avg = sum(window) / len(window) * 1e3
            p99 = window[max(0, math.ceil(0.99 * len(window)) - 1)] * 1e3  # nearest rank
        return {
            "total": ok + failed,
            "successful": ok,
            "failed": failed,
            "average_latency_ms": avg,
            "p99_latency_ms": p99,
            "latency_histogram": histogram,
        }

    def exposition(self) -> bytes:
        return exposition.generate_latest(self.registry)


class _PlanCollector:
    """Reads the plan at scrape time, so /metrics can never lag behind a state change."""

    def __init__(self, statuses, highest_height, alert_blocks: int, plan_refused):
        self._statuses = statuses
        self._highest = highest_height
        self._alert_blocks = alert_blocks
        self._plan_refused = plan_refused

    def collect(self):
        info = GaugeMetricFamily(
            "veid_inference_model_info", "One series per upgrade-plan entry (always 1), labelled with its state.",
            labels=["version", "hash", "activation_height", "state"],
        )
        heights = GaugeMetricFamily(
            "veid_inference_model_activation_height", "Activation height of each upgrade-plan entry, by state.",
            labels=["version", "hash", "state"],
        )
        for st in self._statuses():
            e = st.entry
            info.add_metric([e.version, st.model_hash, str(e.activation_height), st.state.value], 1)
            heights.add_metric([e.version, st.model_hash, st.state.value], e.activation_height)
        yield info
        yield heights
        yield GaugeMetricFamily(
            "veid_inference_highest_block_height", "Highest block height of any request (-1 before the first).",
            value=self._highest(),
        )
        yield GaugeMetricFamily(
            "veid_inference_upgrade_alert_blocks",
            "Blocks before activation by which an upgrade-plan entry must be verified (--upgrade-alert-blocks).",
            value=self._alert_blocks,
        )
        yield GaugeMetricFamily(
            "veid_inference_upgrade_plan_refused",
            "1 while the upgrade plan file on disk is refused and the previous plan stays in force, else 0.",
            value=1 if self._plan_refused() else 0,
        )


def rss_mb() -> float:
    """Resident set size from /proc/self/status (VmRSS, kB) in MiB; 0 where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0
