"""ComputeScore latency with hostile clients on the metrics port, next to the same run without them.

One sidecar, concurrency 1, return_contributions on (what the chain asks),
interleaved in rounds so machine noise hits every configuration alike:
  * quiet: nobody on the metrics port;
  * idle 5000: bench/hostile_client.py holds 5,000 half-sent requests to
    :9090 (the sidecar keeps --metrics-max-connections of them and closes the
    rest, oldest first);
  * churn 500/s: the same plus 500 new half-sent requests a second, each
    evicting an old one: the metrics thread accepts and closes all the time.
Per configuration: p50/p95/p99 of ComputeScore, the sidecar's CPU time per
call, its thread count and RSS, and the slowest of the /health probes the
hostile client sends once a second. A golden-vector check ends the run.
"""

import json
import subprocess
import time

from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden
from tests import hostile_http

CONFIGS = {"quiet": None, "idle 5000": 0.0, "idle 5000 + churn 500/s": 500.0}


def measure(stub, req, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        stub.ComputeScore(req, timeout=10)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5000, help="calls per configuration after warm-up")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--hold", type=int, default=5000)
    args = p.parse_args()
    doc = common.header("hostile", args)
    sidecar = common.start_sidecar()
    pid = sidecar.proc.pid
    vector = golden.load_vectors(sidecar.model_path)[0]
    req = pb.ComputeScoreRequest(features=vector["features"], return_contributions=True)
    lat = {name: [] for name in CONFIGS}
    cpu = {name: 0.0 for name in CONFIGS}
    peak = {name: {"threads": 0, "rss_mb": 0.0, "health_max_ms": 0.0, "health_failures": 0} for name in CONFIGS}
    start_state = hostile_http.proc_status(pid)
    try:
        with sidecar.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            measure(stub, req, 500)  # warm-up
            per_round = -(-args.calls // args.rounds)
            for r in range(args.rounds):
                for name, churn in CONFIGS.items():
                    child = None
                    if churn is not None:
                        child = subprocess.Popen(
                            sidecar_process.python_command("bench.hostile_client")
                            + [f"--port={sidecar.metrics_port}", f"--hold={args.hold}", f"--churn={churn}"],
                            env=sidecar_process.child_env(), stdout=subprocess.PIPE, text=True)
                        assert child.stdout.readline().strip() == "ready"
                    cpu0 = common.cpu_seconds(pid)
                    lat[name] += measure(stub, req, per_round)
                    cpu[name] += common.cpu_seconds(pid) - cpu0
                    st = hostile_http.proc_status(pid)
                    peak[name]["threads"] = max(peak[name]["threads"], st["Threads"])
                    peak[name]["rss_mb"] = max(peak[name]["rss_mb"], st["VmRSS"] / 1024)
                    if child:
                        child.terminate()
                        out = json.loads(child.communicate(timeout=60)[0].splitlines()[-1])
                        peak[name]["health_max_ms"] = max(peak[name]["health_max_ms"], out["health_max_s"] * 1e3)
                        peak[name]["health_failures"] += out["health_failures"]
                print(f"round {r + 1}/{args.rounds} done", flush=True)
        common.golden_check(sidecar.target, sidecar.model_path)
        log_lines = len(sidecar.log().splitlines())
    finally:
        rc = sidecar.terminate()
    if rc != 0:
        raise SystemExit(f"sidecar exited {rc}:\n{sidecar.log()}")
    rows, results = [], {}
    for name in CONFIGS:
        s = common.summary_ms(lat[name])
        results[name] = dict(s, server_cpu_ms_per_call=cpu[name] / len(lat[name]) * 1e3, **peak[name])
        rows.append([name, s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], results[name]["server_cpu_ms_per_call"],
                     peak[name]["threads"], peak[name]["rss_mb"], peak[name]["health_max_ms"]])
    print(common.table(rows, ["configuration", "p50 ms", "p95 ms", "p99 ms", "max ms", "server CPU ms/call",
                              "threads", "RSS MB", "/health max ms"]))
    print(f"sidecar at start: {start_state['Threads']} threads, {start_state['VmRSS'] / 1024:.1f} MB; "
          f"{log_lines} log lines at the end")
    doc.update(results=results, start=start_state, log_lines=log_lines, calls=args.calls, rounds=args.rounds,
               hold=args.hold)
    common.write(args.out_dir, "hostile", doc)


if __name__ == "__main__":
    main()
