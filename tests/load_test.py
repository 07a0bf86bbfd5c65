"""Sustained load with abusive metrics scraping, against one sidecar.

64 concurrent callers for VEID_LOAD_DURATION_S seconds (default 30; a
manual-tagged target can set it longer) while four threads scrape /metrics and
/health without pause: no call and no scrape may fail, and every response must
be byte-identical to the first response for the same input (compute_time_ms
aside). Latency under scraping is a benchmark's business (bench/latency.py),
not a test's: nothing here asserts wall-clock times.
"""

import os
import threading
import time

import numpy as np
import pytest

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden

DURATION_S = float(os.environ.get("VEID_LOAD_DURATION_S", "30"))
CONCURRENCY = 64
SCRAPERS = 4


def stable_bytes(resp: pb.ComputeScoreResponse) -> bytes:
    resp.compute_time_ms = 0
    return resp.SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def sidecar():
    with sidecar_process.serving() as s:
        yield s


def test_load_with_scrapes(sidecar):
    vectors = golden.load_vectors(sidecar.model_path)
    rng = np.random.default_rng(7)
    inputs = [v["features"] for v in vectors] + [rng.random(768, dtype=np.float32) for _ in range(6)]
    requests = [pb.ComputeScoreRequest(features=x, return_contributions=bool(i % 2)) for i, x in enumerate(inputs)]
    stop = threading.Event()
    failures: list[str] = []
    first: dict[int, bytes] = {}
    calls = [0] * CONCURRENCY
    scrapes = [0] * SCRAPERS
    lock = threading.Lock()

    with sidecar.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        for i, req in enumerate(requests):  # reference bytes before any load
            first[i] = stable_bytes(stub.ComputeScore(req, timeout=30))

        def caller(k: int):
            i = k
            while not stop.is_set():
                i = (i + 1) % len(requests)
                try:
                    b = stable_bytes(stub.ComputeScore(requests[i], timeout=30))
                except Exception as e:  # pylint: disable=broad-except
                    with lock:
                        failures.append(f"call: {e!r}")
                    continue
                calls[k] += 1
                if b != first[i]:
                    with lock:
                        failures.append(f"input {i}: bytes differ under load")

        def scraper(k: int):
            while not stop.is_set():
                for path in ("/metrics", "/health"):
                    try:
                        status, _, body = sidecar_process.http_get(sidecar.metrics_url + path, timeout=30)
                        ok = status == 200 and (path != "/metrics" or b"veid_inference_total" in body)
                    except Exception as e:  # pylint: disable=broad-except
                        ok, status = False, repr(e)
                    if not ok:
                        with lock:
                            failures.append(f"scrape {path}: {status}")
                scrapes[k] += 1

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(CONCURRENCY)]
        threads += [threading.Thread(target=scraper, args=(k,)) for k in range(SCRAPERS)]
        for t in threads:
            t.start()
        time.sleep(DURATION_S)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        m = stub.GetMetrics(pb.GetMetricsRequest(), timeout=30)

    print(f"{sum(calls)} calls, {sum(scrapes)} scrape rounds in {DURATION_S}s")
    assert not failures, failures[:10]
    assert sum(calls) > 0 and all(scrapes)
    assert m.failed_inferences == 0
    assert m.successful_inferences == sum(calls) + len(requests)
    assert sidecar.proc.poll() is None


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
