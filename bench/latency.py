"""ComputeScore latency at concurrency 1 over loopback, next to its baselines.

Same run, interleaved in rounds so machine noise hits every configuration alike:
  * echo: bench/echo_server.py, same gRPC settings and 768-float payload, no work,
    once with the thread pool and once as a grpc.aio server; the faster of the
    two is the transport's floor every ratio is taken against;
  * sidecar: the real sidecar (python -m sidecar.main), without and with
    return_contributions (the chain's client always asks for them);
  * sidecar + scrapes: the same while bench/scraper.py hammers /metrics and /health
    non-stop from 2 threads, and at 10/s per thread (300 x Prometheus's default);
  * optionally a second sidecar from another source tree (--compare-src, e.g. the
    previous commit unpacked with `git archive`), for before/after figures;
then, in this process:
  * model: the model call alone (TrustModel.run: the lock, TF, the outputs back
    as numpy), and the same through TF's public signature call;
  * scorer: validation + model + scoring + hashes (Scorer.score), what the
    handler wraps;
  * naive: the Keras way, keras.layers.TFSMLayer(serving_default) in a
    keras.Model and model.predict(x) per request;
plus a cProfile of the in-process handler, and each server's CPU per call when
called 10 times a second (what it burns between calls counts). A golden-vector
check ends the run.
"""

import json
import math
import os
import subprocess
import time

import grpc
import numpy as np

from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import features as F
from sidecar import golden
from sidecar import hashing


def measure(stub, req, n: int) -> list[float]:
    out = []
    call = stub.ComputeScore
    for _ in range(n):
        t0 = time.perf_counter()
        call(req, timeout=10)
        out.append(time.perf_counter() - t0)
    return out


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class _Context:
    """Just enough of grpc.ServicerContext for calling the handler in-process."""

    def time_remaining(self):
        return None

    def peer(self):
        return "in-process"

    def abort(self, code, message):
        raise RuntimeError(f"{code}: {message}")


def in_process(model_path: str, vector: dict, n: int, naive_n: int, profile_n: int,
               warmup: int) -> tuple[dict, dict, str]:
    import cProfile  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    import pstats  # pylint: disable=import-outside-toplevel

    from sidecar import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
    from sidecar import plan as plan_lib  # pylint: disable=import-outside-toplevel
    from sidecar import registry as registry_lib  # pylint: disable=import-outside-toplevel
    from sidecar import scorer as scorer_lib  # pylint: disable=import-outside-toplevel
    from sidecar import server as server_lib  # pylint: disable=import-outside-toplevel

    sc = scorer_lib.Scorer.load(model_path)
    model = sc._model  # pylint: disable=protected-access
    arr = F.validate(vector["features"])
    lat = {}
    configs = {
        "model (serving path)": lambda: model.run(arr, False),
        "model+contrib (serving path)": lambda: model.run(arr, True),
        "model (signature call)": lambda: model.run_reference(arr, False),
        "model+contrib (signature call)": lambda: model.run_reference(arr, True),
        "scorer": lambda: sc.score(arr, False),
        "scorer+contrib": lambda: sc.score(arr, True),
    }
    for fn in configs.values():
        timed(fn, warmup)
    for _ in range(5):  # interleaved rounds
        for name, fn in configs.items():
            lat.setdefault(name, []).extend(timed(fn, n // 5))

    # The handler in-process, profiled: what the server spends per call outside the transport.
    # The servicer looks the scorer up in a registry, as in the sidecar: a
    # one-entry plan whose loader hands over the scorer loaded above.
    registry = registry_lib.Registry(plan_lib.single(model_path, sc.model_version, sc.model_hash),
                                     loader=lambda entry: sc)
    registry.start(background=False)
    metrics = metrics_lib.Metrics()
    health = server_lib.health.HealthServicer()
    servicer = server_lib.InferenceServicer(registry, metrics, server_lib.Lifecycle(health, metrics), timeout_s=2.0,
                                            started=time.monotonic())
    req = pb.ComputeScoreRequest(features=vector["features"], return_contributions=True)
    ctx = _Context()
    timed(lambda: servicer.ComputeScore(req, ctx), warmup)
    lat["handler+contrib (in-process)"] = timed(lambda: servicer.ComputeScore(req, ctx), n)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(profile_n):
        servicer.ComputeScore(req, ctx)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
    profile = buf.getvalue()

    # (c) naive Keras serving: model.predict per request.
    import keras  # pylint: disable=import-outside-toplevel

    layer = keras.layers.TFSMLayer(model_path, call_endpoint="serving_default")
    inp = keras.Input(shape=(768,), dtype="float32")
    naive = keras.Model(inp, layer(inp))
    x = arr.reshape(1, 768)
    timed(lambda: naive.predict(x, verbose=0), min(20, naive_n))
    lat["naive model.predict"] = timed(lambda: naive.predict(x, verbose=0), naive_n)
    got = naive.predict(x, verbose=0)
    naive_raw = np.float32(np.asarray(next(iter(got.values())) if isinstance(got, dict) else got).reshape(-1)[0])
    notes = {"naive_raw_score_bits": hashing.float32_hex(naive_raw),
             "serving_raw_score_bits": hashing.float32_hex(model.infer(arr))}
    sc.close()
    return lat, notes, profile


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def paced_cpu(stub, req, pid: int, rate: float, seconds: float) -> float:
    """Server CPU ms per call when called `rate` times a second: what idles between calls counts too."""
    n = max(1, int(rate * seconds))
    cpu0, t0 = common.cpu_seconds(pid), time.monotonic()
    for i in range(n):
        stub.ComputeScore(req, timeout=10)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    return (common.cpu_seconds(pid) - cpu0) / n * 1e3


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5000, help="calls per gRPC configuration after warm-up")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=500, help="calls per configuration before measuring")
    p.add_argument("--naive-calls", type=int, default=300, help="model.predict calls (each takes tens of ms)")
    p.add_argument("--profile-calls", type=int, default=2000)
    p.add_argument("--paced-seconds", type=float, default=10.0,
                   help="seconds of 10 calls/s per server for the idle-inclusive CPU per call")
    p.add_argument("--compare-src", default="", help="another source tree to run as 'before' (e.g. git archive of HEAD)")
    p.add_argument("--compare-label", default="before")
    args = p.parse_args()
    doc = common.header("latency", args)

    sidecar = common.start_sidecar()
    before = common.start_sidecar(cwd_src=os.path.abspath(args.compare_src)) if args.compare_src else None
    echos = {"echo": common.Echo(sidecar.model_path), "echo aio": common.Echo(sidecar.model_path, aio=True)}
    vector = golden.load_vectors(sidecar.model_path)[0]
    plain = pb.ComputeScoreRequest(features=vector["features"])
    contrib = pb.ComputeScoreRequest(features=vector["features"], return_contributions=True)
    channels = {name: grpc.insecure_channel(e.target) for name, e in echos.items()}
    channels["sidecar"] = sidecar.channel()
    pids = {name: e.proc.pid for name, e in echos.items()}
    pids["sidecar"] = sidecar.proc.pid
    if before:
        channels[args.compare_label] = before.channel()
        pids[args.compare_label] = before.proc.pid
    stubs = {k: pb_grpc.InferenceServiceStub(c) for k, c in channels.items()}
    servers = list(echos) + ["sidecar"] + ([args.compare_label] if before else [])
    configs = [(name, name, plain) for name in servers] + [(f"{name}+contrib", name, contrib) for name in servers]
    # Prometheus scrapes every 15 s; 2 x 10/s is 300 times that, non-stop is abuse.
    scrape_rates = {"sidecar+contrib+scrapes": 0.0, "sidecar+contrib+scrapes 2x10/s": 10.0}
    configs += [(name, "sidecar", contrib) for name in scrape_rates]
    lat: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    server_cpu = {name: 0.0 for name, _, _ in configs}
    by_thread = {name: {} for name, _, _ in configs}
    scrapes = {name: {"scrapes": 0, "failures": 0} for name in scrape_rates}
    paced = {}
    try:
        for name, server, req in configs:
            measure(stubs[server], req, args.warmup)
        per_round = -(-args.calls // args.rounds)
        for r in range(args.rounds):
            for name, server, req in configs:
                scraper = None
                if name in scrape_rates:
                    scraper = subprocess.Popen(
                        sidecar_process.python_command("bench.scraper")
                        + [f"--url={sidecar.metrics_url}", f"--rate={scrape_rates[name]}"],
                        env=sidecar_process.child_env(), stdout=subprocess.PIPE, text=True)
                    if scraper.stdout.readline().strip() != "ready":
                        raise SystemExit(f"bench.scraper did not start (exit {scraper.wait()})")
                    time.sleep(0.5)
                cpu0, threads0 = common.cpu_seconds(pids[server]), common.thread_cpu_seconds(pids[server])
                lat[name] += measure(stubs[server], req, per_round)
                server_cpu[name] += common.cpu_seconds(pids[server]) - cpu0
                for kind, t in common.thread_cpu_seconds(pids[server]).items():
                    by_thread[name][kind] = by_thread[name].get(kind, 0.0) + t - threads0.get(kind, 0.0)
                if scraper:
                    scraper.terminate()
                    counts = json.loads(scraper.communicate(timeout=30)[0].strip().splitlines()[-1])
                    scrapes[name] = {k: scrapes[name][k] + counts[k] for k in counts}
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        for server in servers:
            paced[f"{server}+contrib"] = paced_cpu(stubs[server], contrib, pids[server], 10.0, args.paced_seconds)
        common.golden_check(sidecar.target, sidecar.model_path)
    finally:
        for c in channels.values():
            c.close()
        for e in echos.values():
            e.stop()
        rc = sidecar.terminate()
        if before:
            before.terminate()
    if rc != 0:
        raise SystemExit(f"sidecar exited {rc}")

    local, extra, profile = in_process(sidecar.model_path, vector, args.calls, args.naive_calls, args.profile_calls,
                                       args.warmup)
    lat.update(local)
    stats = {name: common.summary_ms(v) for name, v in lat.items()}
    for name, cpu in server_cpu.items():
        stats[name]["server_cpu_ms_per_call"] = cpu / len(lat[name]) * 1e3
        stats[name]["server_cpu_ms_per_call_by_thread"] = {k: t / len(lat[name]) * 1e3 for k, t in by_thread[name].items()}
    for name, cpu in paced.items():
        stats[name]["server_cpu_ms_per_call_at_10_per_s"] = cpu
    # The transport floor: the faster echo, per request kind.
    floor = {kind: min((f"{e}{kind}" for e in echos), key=lambda n: stats[n]["p50_ms"]) for kind in ("", "+contrib")}
    e, ec, s, sc_ = stats[floor[""]], stats[floor["+contrib"]], stats["sidecar"], stats["sidecar+contrib"]
    naive = stats["naive model.predict"]
    ratios = {
        "sidecar_p50_over_floor_p50": s["p50_ms"] / e["p50_ms"],
        "sidecar_contrib_p50_over_floor_contrib_p50": sc_["p50_ms"] / ec["p50_ms"],
        "echo_aio_p50_over_echo_p50": stats["echo aio"]["p50_ms"] / stats["echo"]["p50_ms"],
        # CPU time comes in clock ticks (10 ms): a short run may see none.
        "sidecar_contrib_cpu_over_floor_contrib_cpu": ratio(sc_["server_cpu_ms_per_call"], ec["server_cpu_ms_per_call"]),
        "sidecar_contrib_cpu_over_floor_contrib_cpu_at_10_per_s": ratio(paced["sidecar+contrib"], paced[floor["+contrib"]]),
        "naive_p50_over_sidecar_p50": naive["p50_ms"] / s["p50_ms"],
        "naive_p50_over_sidecar_contrib_p50": naive["p50_ms"] / sc_["p50_ms"],
        "contrib_cost_end_to_end": (sc_["p50_ms"] - s["p50_ms"]) / s["p50_ms"],
        "contrib_cost_over_sidecar_work": (sc_["p50_ms"] - s["p50_ms"]) / max(1e-9, s["p50_ms"] - e["p50_ms"]),
        "contrib_cost_model": (stats["model+contrib (serving path)"]["p50_ms"] - stats["model (serving path)"]["p50_ms"])
        / stats["model (serving path)"]["p50_ms"],
        "scrapes_p50_over_no_scrapes_p50": stats["sidecar+contrib+scrapes"]["p50_ms"] / sc_["p50_ms"],
        "scrapes_p99_over_no_scrapes_p99": stats["sidecar+contrib+scrapes"]["p99_ms"] / sc_["p99_ms"],
        "scrapes_10s_p50_over_no_scrapes_p50": stats["sidecar+contrib+scrapes 2x10/s"]["p50_ms"] / sc_["p50_ms"],
        "scrapes_10s_p99_over_no_scrapes_p99": stats["sidecar+contrib+scrapes 2x10/s"]["p99_ms"] / sc_["p99_ms"],
        "signature_call_over_serving_path": stats["model (signature call)"]["p50_ms"]
        / stats["model (serving path)"]["p50_ms"],
    }
    if before:
        ratios["before_p50_over_sidecar_p50"] = stats[args.compare_label]["p50_ms"] / s["p50_ms"]
        ratios["before_contrib_p50_over_sidecar_contrib_p50"] = (
            stats[f"{args.compare_label}+contrib"]["p50_ms"] / sc_["p50_ms"])
        ratios["before_contrib_p50_over_floor_contrib_p50"] = stats[f"{args.compare_label}+contrib"]["p50_ms"] / ec["p50_ms"]
    targets = {
        "p50 <= 1.6 x floor p50 (contributions)": ratios["sidecar_contrib_p50_over_floor_contrib_p50"] <= 1.6,
        "p50 <= 1.6 x floor p50 (plain)": ratios["sidecar_p50_over_floor_p50"] <= 1.6,
        "p99 <= 2 ms (contributions)": sc_["p99_ms"] <= 2.0,
        "p99 <= 2 ms (plain)": s["p99_ms"] <= 2.0,
        "server CPU/call <= 1.5 x floor's (contributions)": ratios["sidecar_contrib_cpu_over_floor_contrib_cpu"] <= 1.5,
        "server CPU/call <= 1.5 x floor's at 10 calls/s": ratios["sidecar_contrib_cpu_over_floor_contrib_cpu_at_10_per_s"]
        <= 1.5,
        "scraped non-stop: p50 <= 1.5 x unscraped": ratios["scrapes_p50_over_no_scrapes_p50"] <= 1.5,
        ">= 30 x faster than model.predict (contributions)": ratios["naive_p50_over_sidecar_contrib_p50"] >= 30,
        "contributions cost <= 30 % of a score's latency": ratios["contrib_cost_end_to_end"] <= 0.30,
        "no scrape failed": all(c["failures"] == 0 for c in scrapes.values()),
    }
    doc.update(stats=stats, ratios=ratios, targets=targets, scrapes=scrapes, profile=profile, notes=extra, floor=floor,
               load_average=os.getloadavg())
    rows = [[n, v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["max_ms"],
             v["p50_ms"] / (ec if "contrib" in n else e)["p50_ms"], v.get("server_cpu_ms_per_call", ""),
             v.get("server_cpu_ms_per_call_at_10_per_s", "")] for n, v in stats.items()]
    print(common.table(rows, ["configuration", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "p50/floor",
                              "server CPU ms/call", "at 10 calls/s"]))
    print(f"transport floor: {floor}; load average at the end: {os.getloadavg()}")
    for k, v in ratios.items():
        print(f"{k:55s} {v:8.3f}")
    for k, v in targets.items():
        print(f"{'MET ' if v else 'MISS'} {k}")
    for name in server_cpu:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(stats[name]["server_cpu_ms_per_call_by_thread"].items()))
        print(f"server CPU ms/call by thread, {name}: {parts}")
    print(f"scrapes during the scrape phase: {scrapes}")
    print(profile)

    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.8))
    for name, v in lat.items():
        xs = np.sort(np.asarray(v)) * 1e3
        ax[0].plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=name, lw=1.2)
    ax[0].set_xscale("log")
    ax[0].set_xlabel("latency (ms, log)")
    ax[0].set_ylabel("fraction of calls")
    ax[0].set_title("ComputeScore at concurrency 1: CDF")
    ax[0].legend(fontsize=7)
    names = list(stats)
    y = np.arange(len(names))
    for i, (q, c) in enumerate((("p50_ms", "tab:blue"), ("p99_ms", "tab:red"))):
        ax[1].barh(y + (i - 0.5) * 0.38, [stats[n][q] for n in names], height=0.38, color=c, label=q[:3])
    ax[1].set_yticks(y, names, fontsize=7)
    ax[1].set_xscale("log")
    ax[1].set_xlabel("ms (log)")
    ax[1].set_title(f"p50 / p99 — {doc['date'][:10]} {doc['commit']}")
    ax[1].legend()
    common.write(args.out_dir, "latency", doc, fig)
    missed = [k for k, v in targets.items() if not v]
    if missed:
        print("targets missed (see bench/README.md for what bounds them):", "; ".join(missed))


if __name__ == "__main__":
    main()
