"""Requests/s and p99 at concurrency 1, 4, 16, 64 from a separate client process.

bench/load_client.py (grpc.aio, one process) drives the sidecar and, as the
baseline at each concurrency in the same run, bench/echo_server.py (same gRPC
settings, no work). All calls ask for contributions, as the chain's client
does; the sidecar's responses are checked byte for byte against the first
response to the same input. Each row also reports the CPU time the server and
the client spent per call: with every core busy, cores / (server + client CPU
per call) bounds the rate. A golden-vector check ends the run.
"""

import json
import os
import subprocess

from bench import common
from ops import sidecar_process


def drive(target: str, server_pid: int, model_path: str, c: int, duration: float, check: bool) -> dict:
    cmd = sidecar_process.python_command("bench.load_client") + [
        f"--target={target}", f"--server-pid={server_pid}", f"--model-path={model_path}", f"--concurrency={c}",
        f"--duration={duration}",
        "--contributions"] + (["--check-bytes"] if check else [])
    out = subprocess.run(cmd, env=sidecar_process.child_env(), capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per (server, concurrency)")
    p.add_argument("--concurrency", default="1,4,16,64")
    args = p.parse_args()
    doc = common.header("throughput", args)
    levels = [int(c) for c in args.concurrency.split(",")]
    sidecar = common.start_sidecar()
    echo = common.Echo(sidecar.model_path)
    results = {"echo": {}, "sidecar": {}}
    try:
        for c in levels:
            results["echo"][c] = drive(echo.target, echo.proc.pid, sidecar.model_path, c, args.duration, False)
            results["sidecar"][c] = drive(sidecar.target, sidecar.proc.pid, sidecar.model_path, c, args.duration, True)
            print(f"c={c}: sidecar {results['sidecar'][c]['rps']:.0f} req/s, echo {results['echo'][c]['rps']:.0f} req/s",
                  flush=True)
        common.golden_check(sidecar.target, sidecar.model_path)
    finally:
        echo.stop()
        rc = sidecar.terminate()
    if rc != 0:
        raise SystemExit(f"sidecar exited {rc}")
    rows = []
    for c in levels:
        s, e = results["sidecar"][c], results["echo"][c]
        rows.append([c, s["rps"], s["p50_ms"], s["p99_ms"], sum(s["errors"].values()), s["mismatches"],
                     s["server_cpu_ms_per_call"], s["client_cpu_ms_per_call"], e["rps"], e["p99_ms"],
                     e["server_cpu_ms_per_call"], e["client_cpu_ms_per_call"], s["rps"] / e["rps"]])
    print(common.table(rows, ["c", "sidecar req/s", "p50 ms", "p99 ms", "errors", "byte mismatches",
                              "server CPU ms/call", "client CPU ms/call", "echo req/s", "echo p99 ms",
                              "echo server CPU ms/call", "echo client CPU ms/call", "sidecar/echo"]))
    # With the cores saturated, req/s <= cores / (server + client CPU per call).
    cores = len(os.sched_getaffinity(0))
    for c in levels:
        s = results["sidecar"][c]
        s["cpu_bound_rps"] = cores / ((s["server_cpu_ms_per_call"] + s["client_cpu_ms_per_call"]) / 1e3)
        print(f"c={c}: {cores} cores / (server + client CPU per call) = {s['cpu_bound_rps']:.0f} req/s at most")
    s4 = results["sidecar"].get(4)
    targets = {}
    if s4:
        targets[">= 1500 req/s at c=4"] = s4["rps"] >= 1500
        targets["p99 <= 10 ms at c=4"] = s4["p99_ms"] <= 10
    if 64 in results["sidecar"]:
        targets["no errors at c=64"] = not results["sidecar"][64]["errors"]
    targets["identical bytes throughout"] = all(r["mismatches"] == 0 for r in results["sidecar"].values())
    for k, v in targets.items():
        print(f"{'MET ' if v else 'MISS'} {k}")
    doc.update(results=results, targets=targets)
    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name, style in (("sidecar", "o-"), ("echo", "s--")):
        ax[0].plot(levels, [results[name][c]["rps"] for c in levels], style, label=name)
        ax[1].plot(levels, [results[name][c]["p99_ms"] for c in levels], style, label=name)
    for a, t in zip(ax, ("requests/s", "p99 (ms)")):
        a.set_xscale("log", base=2)
        a.set_xlabel("concurrency")
        a.set_title(t)
        a.legend()
    ax[0].axhline(1500, color="grey", lw=0.8, ls=":")
    fig.suptitle(f"throughput with contributions — {doc['date'][:10]} {doc['commit']}")
    common.write(args.out_dir, "throughput", doc, fig)


if __name__ == "__main__":
    main()
