"""A separate client process driving ComputeScore at a fixed concurrency (grpc.aio).

Prints one JSON object: calls, errors by status code, wall time, req/s,
latency percentiles and CPU time per call (this process; the server's with
--server-pid). Inputs cycle through the golden vectors; with
--check-bytes every response must equal the first response to the same input
(compute_time_ms aside), which the load test and benchmarks use to prove that
identical inputs give identical bytes under load.
"""

import argparse
import asyncio
import json
import time

import grpc

from bench import common
from inference.v1 import inference_pb2 as pb
from sidecar import golden


async def run(a) -> dict:
    vectors = golden.load_vectors(a.model_path)
    requests = [pb.ComputeScoreRequest(features=v["features"], return_contributions=a.contributions).SerializeToString()
                for v in vectors]
    lat: list[float] = []
    errors: dict[str, int] = {}
    first: dict[int, bytes] = {}
    mismatches = 0
    sent = 0
    deadline = time.monotonic() + a.duration if a.duration else None

    async with grpc.aio.insecure_channel(a.target) as ch:
        # Identity serializers: the client process spends no time re-encoding the same requests.
        call = ch.unary_unary("/inference.v1.InferenceService/ComputeScore")

        async def worker():
            nonlocal sent, mismatches
            while True:
                if deadline is not None:
                    if time.monotonic() >= deadline:
                        return
                elif sent >= a.requests:
                    return
                i = sent % len(requests)
                sent += 1
                t0 = time.perf_counter()
                try:
                    body = await call(requests[i], timeout=a.timeout)
                except grpc.aio.AioRpcError as e:
                    errors[e.code().name] = errors.get(e.code().name, 0) + 1
                    continue
                lat.append(time.perf_counter() - t0)
                if a.check_bytes:
                    r = pb.ComputeScoreResponse.FromString(body)
                    r.compute_time_ms = 0
                    b = r.SerializeToString(deterministic=True)
                    if first.setdefault(i, b) != b:
                        mismatches += 1

        # Warm-up: connections and the server's thread pool.
        for _ in range(min(200, a.warmup)):
            await call(requests[0], timeout=a.timeout)
        t0, own0 = time.monotonic(), time.process_time()
        server0 = common.cpu_seconds(a.server_pid) if a.server_pid else 0.0
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        wall = time.monotonic() - t0
        own = time.process_time() - own0
        server = common.cpu_seconds(a.server_pid) - server0 if a.server_pid else None
    out = {"concurrency": a.concurrency, "calls": len(lat) + sum(errors.values()), "ok": len(lat), "errors": errors,
           "wall_s": wall, "rps": len(lat) / wall if wall else 0.0, "mismatches": mismatches}
    calls = max(1, out["calls"])
    # CPU per call says what bounds the rate when the cores are saturated.
    out["client_cpu_ms_per_call"] = own / calls * 1e3
    if server is not None:
        out["server_cpu_ms_per_call"] = server / calls * 1e3
    out.update(common.summary_ms(lat))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--model-path", required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0 means --requests calls")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--contributions", action="store_true")
    p.add_argument("--check-bytes", action="store_true")
    p.add_argument("--server-pid", type=int, default=0, help="also report the server's CPU time per call")
    print(json.dumps(asyncio.run(run(p.parse_args()))))


if __name__ == "__main__":
    main()
