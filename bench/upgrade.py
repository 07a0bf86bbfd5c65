"""Upgrade plans: RSS with one, two and three models loaded, staging time, and ComputeScore latency while a model stages.

One sidecar serves a plan that grows from one entry to three (v1.0.0,
v1.1.0, and v1.0.0's files relabelled as a third version) through SIGHUP, as
an operator would stage upgrades. Staging time is SIGHUP to `verified` in
GetModelInfo. The latency baseline is the same c=1 ComputeScore loop in the
same process with no staging going on, interleaved with the staging windows.
"""

import json
import os
import signal
import threading
import time

import grpc

from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden

THIRD = "v1.2.0-bench"


def write_plan(path: str, entries: list[dict]) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"entries": entries}, f)
    os.replace(path + ".tmp", path)


def stage(sidecar, stub, plan_path: str, entries: list[dict]) -> float:
    """Writes the plan, sends SIGHUP, returns seconds until every entry is verified (or active)."""
    write_plan(plan_path, entries)
    t0 = time.monotonic()
    sidecar.proc.send_signal(signal.SIGHUP)
    common.wait_verified(stub, {e["version"] for e in entries}, log=sidecar.log)
    return time.monotonic() - t0


def loop_latencies(target: str, features: list[float], stop: threading.Event) -> list[float]:
    out = []
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        req = pb.ComputeScoreRequest(features=features, metadata=pb.InferenceMetadata(block_height=1))
        while not stop.is_set():
            t0 = time.perf_counter()
            stub.ComputeScore(req, timeout=30)
            out.append(time.perf_counter() - t0)
    return out


def measure_window(target, features, body) -> list[float]:
    """Runs the c=1 loop while `body()` runs; returns the loop's latencies."""
    stop = threading.Event()
    result = []
    th = threading.Thread(target=lambda: result.extend(loop_latencies(target, features, stop)))
    th.start()
    try:
        body()
    finally:
        stop.set()
        th.join()
    return result


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved baseline/staging windows")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of c=1 load after each plan change, unmeasured")
    args = p.parse_args()
    doc = common.header("upgrade", args)
    workdir = sidecar_process.tmpdir("bench-upgrade-")
    models = committed_model.copy_models(workdir)
    committed_model.relabel(models, "trust_score", "trust_score_bench", THIRD)
    with open(os.path.join(models, "plan.example.json"), encoding="utf-8") as f:
        example = json.load(f)["entries"]
    third = {"version": THIRD, "path": "trust_score_bench", "expected_hash": example[0]["expected_hash"],
             "activation_height": example[1]["activation_height"] * 2}
    plans = [example[:1], example, example + [third]]
    plan_path = os.path.join(models, "plan.bench.json")
    write_plan(plan_path, plans[0])
    sidecar = sidecar_process.start("--plan-poll-interval=1h", "--max-loaded-models=3",
                                    upgrade_plan=plan_path, cwd=workdir)
    features = golden.load_vectors(os.path.join(models, "trust_score"))[0]["features"]
    rows, rss, staging = [], {}, {}
    try:
        with sidecar.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            for n, entries in enumerate(plans, start=1):
                if n > 1:
                    staging[n] = stage(sidecar, stub, plan_path, entries)
                measure_window(sidecar.target, features, lambda: time.sleep(args.settle))  # settle, warm the new model
                rss[n] = common.rss_kb(sidecar.proc.pid)
            base, during, stage_s = [], [], []
            for _ in range(args.rounds):
                base += measure_window(sidecar.target, features, lambda: time.sleep(max(stage_s or [5.0])))
                # Unstage the third model, then time staging it again under load.
                stage(sidecar, stub, plan_path, plans[1])
                during += measure_window(sidecar.target, features,
                                         lambda: stage_s.append(stage(sidecar, stub, plan_path, plans[2])))
        common.golden_check(sidecar.target, os.path.join(models, "trust_score"), block_height=1)
    finally:
        sidecar.terminate()
    b, d = common.summary_ms(base), common.summary_ms(during)
    for n in rss:
        rows.append([f"{n} model(s) loaded", rss[n]["VmRSS"] / 1024, rss[n]["VmHWM"] / 1024,
                     f"{staging[n]:.2f}" if n in staging else "(start-up)"])
    print(common.table(rows, ["state", "RSS MiB", "peak MiB", "staging s (SIGHUP -> verified)"]))
    print(common.table([["no staging", b["n"], b["p50_ms"], b["p99_ms"], 1.0, 1.0],
                        ["while staging", d["n"], d["p50_ms"], d["p99_ms"], d["p50_ms"] / b["p50_ms"],
                         d["p99_ms"] / b["p99_ms"]]],
                       ["ComputeScore c=1", "calls", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"]))
    print(f"staging under load: {', '.join(f'{s:.2f}s' for s in stage_s)}")
    doc.update({"rss_kb": rss, "staging_s": staging, "staging_under_load_s": stage_s,
                "latency_no_staging": b, "latency_while_staging": d})
    plt = common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar([str(n) for n in rss], [rss[n]["VmRSS"] / 1024 for n in rss])
    ax1.axhline(1024, color="red", linestyle="--", label="1 GiB container limit")
    ax1.set(xlabel="models loaded", ylabel="RSS (MiB)", title="sidecar RSS")
    ax1.legend()
    for label, values in (("no staging", base), ("while staging", during)):
        v = sorted(values)
        ax2.plot([x * 1e3 for x in v], [i / len(v) for i in range(len(v))], label=label)
    ax2.set(xscale="log", xlabel="ComputeScore latency (ms)", ylabel="fraction of calls", title="c=1 latency")
    ax2.legend()
    common.write(args.out_dir, "upgrade", doc, fig)


if __name__ == "__main__":
    main()
