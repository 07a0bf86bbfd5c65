"""A live Prometheus (Debian 12's prometheus) scraping a real sidecar with the
files operators copy: deploy/prometheus/prometheus.yml, its scrape interval
shortened and its target moved to the sidecar's free port (the only edits),
and alerts.yml beside it. Everything is read back through Prometheus' HTTP
API, so a series, label or rule expression that only works in
`promtool test rules` fails here.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import grpc
import pytest

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden

PROMETHEUS = "/usr/bin/prometheus"
_CONFIG_DIR = "deploy/prometheus"
_JOB = "inference-sidecar"
_SCRAPE_S = 1
_EXAMPLE_PLAN = os.path.join("models", "plan.example.json")
_WAIT_S = 60.0
_CALLS = 20
_BAD_CALLS = 3


def report(what, value):
    print(f"prometheus_test: {what}: {value}", flush=True)


@pytest.fixture(scope="module", autouse=True)
def prometheus_available():
    if not os.access(PROMETHEUS, os.X_OK):
        reason = f"{PROMETHEUS} is missing (apt-get install prometheus; ./bazelw installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Prometheus test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def workdir():
    d = sidecar_process.tmpdir("prometheus-")
    committed_model.copy_models(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def plan(workdir):
    with open(os.path.join(workdir, _EXAMPLE_PLAN), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def sidecar(workdir):
    """The README's upgrade sidecar: two plan entries. Stopped by the last test."""
    s = sidecar_process.start(upgrade_plan=_EXAMPLE_PLAN, cwd=workdir)
    yield s
    s.kill()


def operator_config(target):
    """prometheus.yml as shipped, with the test's interval (and a timeout
    within it) and target."""
    with open(os.path.join(_CONFIG_DIR, "prometheus.yml"), encoding="utf-8") as f:
        text = f.read()
    edits = [("scrape_interval: 15s", f"scrape_interval: {_SCRAPE_S}s"),
             ("evaluation_interval: 15s", f"evaluation_interval: {_SCRAPE_S}s"),
             ("scrape_timeout: 5s", f"scrape_timeout: {_SCRAPE_S}s"),
             ('targets: ["127.0.0.1:9090"]', f'targets: ["{target}"]')]
    for old, new in edits:
        assert text.count(old) == 1, f"prometheus.yml no longer has {old!r}"
        text = text.replace(old, new)
    return text


class Prometheus:
    def __init__(self, directory, target):
        self.dir = directory
        os.makedirs(directory)
        with open(os.path.join(directory, "prometheus.yml"), "w", encoding="utf-8") as f:
            f.write(operator_config(target))
        shutil.copyfile(os.path.join(_CONFIG_DIR, "alerts.yml"), os.path.join(directory, "alerts.yml"))
        self.url = f"http://127.0.0.1:{sidecar_process.free_port()}"
        self.log_path = os.path.join(directory, "prometheus.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={directory}/prometheus.yml", f"--storage.tsdb.path={directory}/data",
                 f"--web.listen-address={self.url[len('http://'):]}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=directory)
        deadline = time.monotonic() + _WAIT_S
        while not self.ready():
            assert self.alive() and time.monotonic() < deadline, f"prometheus did not start:\n{self.log()}"
            time.sleep(0.2)

    def alive(self):
        return self.proc.poll() is None

    def ready(self):
        try:
            return sidecar_process.http_get(self.url + "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def api(self, path, **params):
        status, _, body = sidecar_process.http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        reply = json.loads(body)
        assert status == 200 and reply["status"] == "success", (path, params, reply)
        return reply["data"]

    def query(self, expr):
        """An instant vector as [(labels, value)]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def samples(self, expr):
        """A range selector's samples as [(labels, [(timestamp, value)])]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "matrix", data
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def wait_for(self, expr, predicate, what):
        """Polls `expr` until predicate(result) holds; returns the result."""
        deadline = time.monotonic() + _WAIT_S
        while not predicate(result := self.query(expr)):
            assert time.monotonic() < deadline, f"{what}: {expr} is {result}\n{self.log()}"
            time.sleep(_SCRAPE_S / 4)
        return result

    def close(self):
        sidecar_process.end_process(self.proc)


@pytest.fixture(scope="module")
def prometheus(workdir, sidecar):
    p = Prometheus(os.path.join(workdir, "prometheus"), sidecar.metrics_url[len("http://"):])
    yield p
    p.close()


def one_value(result):
    ((_, value),) = result
    return value


def sample_sum(prometheus, expr):
    """sum(expr), 0 while the series does not exist yet."""
    result = prometheus.query(f"sum({expr})")
    return one_value(result) if result else 0.0


def test_the_sidecar_is_up(prometheus, sidecar):
    started = time.monotonic()
    ((labels, _),) = prometheus.wait_for(f'up{{job="{_JOB}"}}', lambda r: r and r[0][1] == 1, "target up")
    report("up == 1 after (s)", round(time.monotonic() - started, 1))
    assert labels["instance"] == sidecar.metrics_url[len("http://"):]
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert {r["name"] for r in rules} >= {"InferenceSidecarDown", "VeidInferenceLatencyP99High"}
    assert all(r["health"] in ("ok", "unknown") and not r.get("lastError") for r in rules), rules


def latency_alert_quantile(prometheus):
    """The latency alert's expression as Prometheus loaded it, without its threshold."""
    (query,) = [rule["query"] for group in prometheus.api("rules")["groups"] for rule in group["rules"]
                if rule["name"] == "VeidInferenceLatencyP99High"]
    quantile, threshold = re.fullmatch(r"(.*\S)\s*>\s*([0-9.]+)\s*", query, re.S).groups()
    assert "histogram_quantile" in quantile
    return quantile, float(threshold)


def test_calls_move_the_counters_and_the_latency_histogram(prometheus, sidecar, plan):
    ok, bad, count = ('veid_inference_total{job="%s",status="success"}' % _JOB,
                      'veid_inference_total{job="%s",status="error"}' % _JOB,
                      'veid_inference_latency_seconds_count{job="%s"}' % _JOB)
    before = {e: sample_sum(prometheus, e) for e in (ok, bad, count)}
    vector = golden.load_vectors(committed_model.MODEL_SRC)[0]
    activation = plan["entries"][1]["activation_height"]
    with sidecar.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        for i in range(_CALLS):
            height = activation - 1 + i % 2
            stub.ComputeScore(pb.ComputeScoreRequest(features=vector["features"],
                                                     metadata=pb.InferenceMetadata(block_height=height)), timeout=30)
        for _ in range(_BAD_CALLS):
            with pytest.raises(grpc.RpcError) as e:
                stub.ComputeScore(pb.ComputeScoreRequest(features=[0.5] * 767,
                                                         metadata=pb.InferenceMetadata(block_height=1)), timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    want = {ok: before[ok] + _CALLS, bad: before[bad] + _BAD_CALLS, count: before[count] + _CALLS}
    for expr, value in want.items():
        got = prometheus.wait_for(f"sum({expr})", lambda r, v=value: r and one_value(r) == v, "calls counted")
        report(f"sum({expr})", one_value(got))
    # Every bucket the calls landed in has them (cumulative: +Inf has all).
    (inf,) = prometheus.query(f'veid_inference_latency_seconds_bucket{{job="{_JOB}",le="+Inf"}}')
    assert inf[1] == want[count]
    quantile, threshold = latency_alert_quantile(prometheus)
    ((labels, p99),) = prometheus.query(quantile)
    report(f"latency alert's quantile {' '.join(quantile.split())}", p99)
    assert labels == {"instance": sidecar.metrics_url[len("http://"):]}
    assert not math.isnan(p99) and 0 < p99 < threshold, p99


def test_model_info_shows_each_plan_entry(prometheus, plan):
    result = prometheus.query(f'veid_inference_model_info{{job="{_JOB}"}}')
    got = sorted((m["version"], m["hash"], int(m["activation_height"]), m["state"]) for m, value in result
                 if value == 1)
    report("veid_inference_model_info", got)
    want = [(e["version"], e["expected_hash"], e["activation_height"]) for e in plan["entries"]]
    assert [g[:3] for g in got] == want and len(result) == len(want), result
    assert all(g[3] in ("active", "verified") for g in got), got


def test_a_stopped_sidecar_turns_inference_sidecar_down_pending(prometheus, sidecar):
    """Within two scrape intervals, counted in the scrapes Prometheus made
    (their timestamps), not in the test's wall-clock time."""
    assert sidecar.terminate() == 0, sidecar.log()
    stopped = time.time()
    alert = 'ALERTS{alertname="InferenceSidecarDown"}'
    ((labels, _),) = prometheus.wait_for(alert, bool, "InferenceSidecarDown")
    report("InferenceSidecarDown after the sidecar exited (s)", round(time.time() - stopped, 1))
    assert labels["alertstate"] == "pending" and labels["instance"] == sidecar.metrics_url[len("http://"):], labels
    ((_, pending),) = prometheus.samples(f'{alert}[{int(_WAIT_S)}s]')
    first_pending = pending[0][0]
    ((_, scrapes),) = prometheus.samples(f'up{{job="{_JOB}"}}[{int(_WAIT_S) + 30}s]')
    after_stop = [(t, v) for t, v in scrapes if stopped < t <= first_pending]
    report("scrapes between the exit and pending", len(after_stop))
    assert len(after_stop) <= 2, (stopped, first_pending, scrapes[-5:])
    assert all(v == 0 for _, v in after_stop)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", *sys.argv[1:]]))
