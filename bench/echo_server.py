"""The transport's floor: inference.v1 over the same gRPC server settings as the
sidecar (sidecar/server.py: 32-thread pool, so_reuseport off, 1024 concurrent
RPCs), answering ComputeScore with a canned response of the real size
without validating, inferring or hashing anything.

With --aio the same answers come from a grpc.aio server (the handler runs on
the event loop's thread, no hand-off to a pool): the floor of a sidecar that
would change its server model. The benchmarks take the faster of the two.
"""

import argparse
import asyncio
import concurrent.futures
import signal
import threading

import grpc

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from sidecar import golden


class Echo(pb_grpc.InferenceServiceServicer):
    def __init__(self, model_path: str):
        v = golden.load_vectors(model_path)[0]
        base = dict(score=v["score"], raw_score=v["raw_score"], confidence=v["confidence"],
                    input_hash=v["input_hash"], output_hash=v["output_hash"], model_version="v1.0.0",
                    model_hash="0" * 64, reason_codes=v["reason_codes"], exact_output_hash=v["exact_output_hash"],
                    compute_time_ms=0)
        self._plain = pb.ComputeScoreResponse(**base)
        self._contrib = pb.ComputeScoreResponse(**base, feature_contributions={
            "face_embedding": 1.5, "doc_quality": 2.5, "ocr": -0.5, "metadata": 0.25})

    def ComputeScore(self, request, context):  # pylint: disable=invalid-name
        # Touch the payload as the sidecar must (one conversion of the repeated field).
        if len(request.features) != 768:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected 768 features")
        return self._contrib if request.return_contributions else self._plain

    def GetModelInfo(self, request, context):  # pylint: disable=invalid-name
        return pb.GetModelInfoResponse(version="echo")


class AioEcho(pb_grpc.InferenceServiceServicer):
    """Echo's answers as coroutines, for grpc.aio."""

    def __init__(self, model_path: str):
        self._echo = Echo(model_path)

    async def ComputeScore(self, request, context):  # pylint: disable=invalid-name
        if len(request.features) != 768:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected 768 features")
        return self._echo.ComputeScore(request, context)

    async def GetModelInfo(self, request, context):  # pylint: disable=invalid-name
        return self._echo.GetModelInfo(request, context)


async def serve_aio(addr: str, model_path: str) -> None:
    server = grpc.aio.server(maximum_concurrent_rpcs=1024, options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_InferenceServiceServicer_to_server(AioEcho(model_path), server)
    server.add_insecure_port(addr)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--model-path", required=True)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--aio", action="store_true", help="a grpc.aio server instead of the thread pool")
    a = p.parse_args()
    if a.aio:
        asyncio.run(serve_aio(a.addr, a.model_path))
        return
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=a.workers, thread_name_prefix="grpc"),
                         maximum_concurrent_rpcs=1024, options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_InferenceServiceServicer_to_server(Echo(a.model_path), server)
    server.add_insecure_port(a.addr)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
