"""Chain calls against an image in an engine, compared with a native sidecar.
Shared by the Podman (engine_test) and Docker (docker_test) tests."""

import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from inference.v1 import inference_pb2 as pb
from ops import sidecar_process


def report(test, what, value):
    """Measurements the issues ask for land in the test log."""
    print(f"{test}: {what}: {value}", flush=True)


def stable(resp):
    """A response's bytes without its one wall-clock field."""
    resp.compute_time_ms = 0
    return resp.SerializeToString(deterministic=True)


def compare_with_native(stub, native, vectors, randoms, block_height=0):
    """Every golden vector and `randoms` random inputs, with and without
    contributions, byte-identical to the native sidecar; the calls to `stub`
    go out at once (an engine's container may be slowed down on purpose)."""
    rng = np.random.RandomState(11)
    inputs = [v["features"] for v in vectors] + [rng.uniform(0, 1, 768).astype(np.float32).tolist()
                                                  for _ in range(randoms)]
    meta = pb.InferenceMetadata(block_height=block_height)
    requests = {(i, c): pb.ComputeScoreRequest(features=x, return_contributions=c, metadata=meta)
                for i, x in enumerate(inputs) for c in (False, True)}
    futures = {key: stub.ComputeScore.future(r, timeout=60) for key, r in requests.items()}
    for i, v in enumerate(vectors):
        r = futures[(i, False)].result()
        assert (r.output_hash, r.exact_output_hash) == (v["output_hash"], v["exact_output_hash"]), v["name"]
    for key, request in requests.items():
        got = stable(futures[key].result())
        assert got == stable(native.ComputeScore(request, timeout=30)), f"input {key[0]} (contributions={key[1]}) differs"


def wait_serving(channel, running, logs, timeout=sidecar_process.START_TIMEOUT_S):
    """Until the inference service behind `channel()` (a new channel to a
    published port) is SERVING; `running()` says whether the container still
    runs, `logs()` what it said."""
    deadline = time.monotonic() + timeout
    while True:
        with channel() as ch:
            try:
                request = health_pb2.HealthCheckRequest(service=sidecar_process.SERVICE_NAME)
                if health_pb2_grpc.HealthStub(ch).Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        if not running():
            raise AssertionError(f"container exited before SERVING:\n{logs()}")
        assert time.monotonic() < deadline, f"not SERVING after {timeout}s:\n{logs()}"
        time.sleep(0.3)
