"""SIGTERM with calls in flight: health flips first, in-flight calls finish, exit 0.
SIGKILL, then a restart on the same ports: SERVING again with the same model hash.

The sidecar runs with --testing-inject-latency so that every ComputeScore
stays in flight for 2 s: long enough to be certain the calls have reached the
server before the signal and are still running when it arrives.
"""

import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden

IN_FLIGHT = 32
LATENCY_S = 2.0
# 32 sleeping calls plus the Health.Watch stream each hold a worker thread of
# the synchronous server; give it room so none of them waits for a thread.
WORKERS = 48


def test_sigterm_drains_in_flight_calls():
    # SIGINT goes through the same handler; a second TF process just for it is not worth it.
    sig = signal.SIGTERM
    s = sidecar_process.start(f"--testing-inject-latency={LATENCY_S}s", "--timeout=5s", "--grace-period=10s",
                              f"--grpc-workers={WORKERS}")
    try:
        want = golden.load_vectors(s.model_path)[0]
        with s.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            health = health_pb2_grpc.HealthStub(ch)
            assert s.sample("veid_inference_sidecar_healthy") == 1
            assert sidecar_process.http_get(s.metrics_url + "/health")[0] == 200

            watch = health.Watch(health_pb2.HealthCheckRequest(service=sidecar_process.SERVICE_NAME))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            updates = []
            watcher = threading.Thread(target=lambda: updates.extend(r.status for r in _until_not_serving(watch)))
            watcher.start()

            req = pb.ComputeScoreRequest(features=want["features"])
            sent = time.monotonic()
            calls = [stub.ComputeScore.future(req, timeout=30) for _ in range(IN_FLIGHT)]
            time.sleep(LATENCY_S / 4)  # they reach the server in milliseconds
            assert not any(c.done() for c in calls), "calls finished before the signal; the test proves nothing"
            s.proc.send_signal(sig)

            # Health goes first, everywhere, while the calls are still running.
            s.wait_for_log("refusing new calls")
            assert sidecar_process.http_get(s.metrics_url + "/health")[0] == 503
            assert s.sample("veid_inference_sidecar_healthy") == 0
            watcher.join(5)
            assert updates and updates[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            with pytest.raises(grpc.RpcError) as info:
                stub.ComputeScore(req, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert not any(c.done() for c in calls), "in-flight calls ended before the drain"

            for c in calls:
                resp = c.result()
                assert resp.output_hash == want["output_hash"]
                assert resp.exact_output_hash == want["exact_output_hash"]
            assert time.monotonic() - sent >= LATENCY_S
        assert s.proc.wait(30) == 0, s.log()
        assert "stopped" in s.log()
    finally:
        s.kill()


def test_sigkill_then_restart_serves_the_same_model():
    s = sidecar_process.start()
    try:
        want = golden.load_vectors(s.model_path)[0]
        req = pb.ComputeScoreRequest(features=want["features"], return_contributions=True)
        with s.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            model_hash = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).hash
            assert stub.ComputeScore(req, timeout=30).output_hash == want["output_hash"]
            # Killed with calls in flight: nothing gets to clean up.
            calls = [stub.ComputeScore.future(req, timeout=30) for _ in range(8)]
            assert s.terminate(signal.SIGKILL) == -signal.SIGKILL
            for c in calls:
                try:
                    c.result()
                except grpc.RpcError as e:
                    assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e
    finally:
        s.kill()

    again = sidecar_process.Sidecar(model_path=s.model_path, grpc_port=s.grpc_port, metrics_port=s.metrics_port)
    try:
        again.wait_serving()
        with again.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).hash == model_hash
            r = stub.ComputeScore(req, timeout=30)
            assert (r.output_hash, r.exact_output_hash) == (want["output_hash"], want["exact_output_hash"])
        assert sidecar_process.http_get(again.metrics_url + "/health")[0] == 200
        assert again.terminate() == 0, again.log()
    finally:
        again.kill()


def _until_not_serving(watch):
    for r in watch:
        yield r
        if r.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
