"""What mutual TLS costs the chain node's calls: ComputeScore at concurrency 1,
plaintext against mutual TLS, in the same run.

Two sidecars from this checkout on loopback, one plaintext (--require-mtls=false)
and one serving the development certificates (ops/dev_certs); interleaved in
rounds so machine noise hits both alike. Per configuration: the call on a warm
connection (what the chain node pays per block), and a new connection's first
call (its handshake: TCP + TLS 1.3 with both certificates + HTTP/2 setup).
"""

import time

import grpc

from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import dev_certs
from ops import sidecar_process
from sidecar import golden


def calls(channel_factory, req, n: int, fresh: bool) -> list[float]:
    out = []
    if fresh:
        for _ in range(n):
            with channel_factory() as ch:
                t0 = time.perf_counter()
                pb_grpc.InferenceServiceStub(ch).ComputeScore(req, timeout=10)
                out.append(time.perf_counter() - t0)
        return out
    with channel_factory() as ch:
        call = pb_grpc.InferenceServiceStub(ch).ComputeScore
        call(req, timeout=10)
        for _ in range(n):
            t0 = time.perf_counter()
            call(req, timeout=10)
            out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000, help="warm calls per configuration")
    p.add_argument("--connections", type=int, default=200, help="new connections per configuration")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    doc = common.header("tls", args)
    certs = dev_certs.make_dev_set(sidecar_process.tmpdir("bench-tls-"))
    creds = grpc.ssl_channel_credentials(*(open(certs[k], "rb").read() for k in ("ca", "client_key", "client_cert")))
    plain = common.start_sidecar("--require-mtls=false")
    mtls = sidecar_process.start(f"--tls-cert-file={certs['server_cert']}", f"--tls-key-file={certs['server_key']}",
                                 f"--tls-client-ca-file={certs['ca']}", credentials=creds)
    try:
        vector = golden.load_vectors(committed_model.MODEL_SRC)[0]
        req = pb.ComputeScoreRequest(features=vector["features"], return_contributions=True)
        configs = {"plaintext": plain.channel, "mutual TLS": mtls.channel}
        lat = {}
        for factory in configs.values():
            calls(factory, req, 300, fresh=False)
        for _ in range(args.rounds):
            for name, factory in configs.items():
                lat.setdefault(f"{name}, warm connection", []).extend(
                    calls(factory, req, args.calls // args.rounds, fresh=False))
                lat.setdefault(f"{name}, new connection", []).extend(
                    calls(factory, req, args.connections // args.rounds, fresh=True))
    finally:
        plain.terminate()
        mtls.terminate()
    doc["latency"] = {name: common.summary_ms(v) for name, v in lat.items()}
    rows = []
    for name, s in doc["latency"].items():
        base = doc["latency"][name.replace("mutual TLS", "plaintext")]
        rows.append([name, s["n"], s["p50_ms"], s["p99_ms"], s["mean_ms"], s["p50_ms"] / base["p50_ms"]])
    print(common.table(rows, ["configuration", "n", "p50 ms", "p99 ms", "mean ms", "p50 / plaintext"]))
    doc["table"] = rows
    common.write(args.out_dir, "tls", doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
