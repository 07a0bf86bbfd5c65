"""Replay: consecutive block heights across an upgrade at concurrency 1, as a syncing node calls.

A node syncing from genesis executes every identity-scoring transaction of
every block in order, one ComputeScore at a time, so its speed is calls/s at
c=1 and its risk is any response that differs from what the network answered.
Two sidecars serve the example upgrade plan (models/plan.example.json: v1.0.0,
then v1.1.0 from its activation height): the one under test and a reference
(--compare-src: the previous commit's source tree; else a second sidecar of
this tree). Both walk the same --heights consecutive heights, centred on the
activation height where the plan allows, with contributions, in interleaved
chunks so machine noise hits both alike. Height h sends golden vector
h mod (number of vectors) with its block-height feature set to h's. Every
response of the sidecar under test is compared, serialized, with the
reference's for the same height (compute_time_ms cleared; it is a timing).
"""

import hashlib
import json
import os
import time

from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import features as F
from sidecar import golden


def requests_for(vectors: list[dict], heights: range) -> list[pb.ComputeScoreRequest]:
    out = []
    for h in heights:
        features = list(vectors[h % len(vectors)]["features"])
        features[F.BLOCK_HEIGHT] = (h % F.BLOCK_HEIGHT_MODULUS) / F.BLOCK_HEIGHT_MODULUS
        out.append(pb.ComputeScoreRequest(features=features, return_contributions=True,
                                          metadata=pb.InferenceMetadata(block_height=h)))
    return out


def replay(stub, reqs: list[pb.ComputeScoreRequest]) -> tuple[list[float], list[bytes], list[str]]:
    """Calls in order; returns latencies, a digest of each response and the model version that answered."""
    lat, digests, versions = [], [], []
    call = stub.ComputeScore
    for req in reqs:
        t0 = time.perf_counter()
        resp = call(req, timeout=30)
        lat.append(time.perf_counter() - t0)
        resp.compute_time_ms = 0
        digests.append(hashlib.sha256(resp.SerializeToString(deterministic=True)).digest())
        versions.append(resp.model_version)
    return lat, digests, versions


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--heights", type=int, default=100_000, help="consecutive heights to replay")
    p.add_argument("--chunk", type=int, default=2_000, help="heights per interleaved chunk")
    p.add_argument("--compare-src", default="", help="source tree of the reference sidecar (e.g. git archive of HEAD~)")
    p.add_argument("--compare-label", default="reference")
    args = p.parse_args()
    doc = common.header("replay", args)
    workdir = sidecar_process.tmpdir("bench-replay-")
    models = committed_model.copy_models(workdir)
    plan_path = os.path.join(models, "plan.example.json")
    with open(plan_path, encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    activation = entries[1]["activation_height"]
    first = max(1, activation - args.heights // 2)
    heights = range(first, first + args.heights)
    vectors = golden.load_vectors(os.path.join(models, "trust_score"))
    reqs = requests_for(vectors, heights)
    flags = ("--plan-poll-interval=1h", "--max-loaded-models=2")
    tested = sidecar_process.start(*flags, upgrade_plan=plan_path, cwd=workdir)
    reference = sidecar_process.start(*flags, upgrade_plan=plan_path, cwd=workdir,
                                      python_path_first=os.path.abspath(args.compare_src) if args.compare_src else None)
    names = ("sidecar", args.compare_label)
    lat = {n: [] for n in names}
    digests = {n: [] for n in names}
    versions = {n: [] for n in names}
    wall = {n: 0.0 for n in names}
    cpu = {n: 0.0 for n in names}
    try:
        with tested.channel() as ch_t, reference.channel() as ch_r:
            stubs = {"sidecar": pb_grpc.InferenceServiceStub(ch_t), args.compare_label: pb_grpc.InferenceServiceStub(ch_r)}
            pids = {"sidecar": tested.proc.pid, args.compare_label: reference.proc.pid}
            for name in names:
                common.wait_verified(stubs[name], {e["version"] for e in entries})
            for i in range(0, len(reqs), args.chunk):
                chunk = reqs[i:i + args.chunk]
                for name in names:
                    cpu0, t0 = common.cpu_seconds(pids[name]), time.perf_counter()
                    got = replay(stubs[name], chunk)
                    wall[name] += time.perf_counter() - t0
                    cpu[name] += common.cpu_seconds(pids[name]) - cpu0
                    lat[name] += got[0]
                    digests[name] += got[1]
                    versions[name] += got[2]
                print(f"{min(i + args.chunk, len(reqs))}/{len(reqs)} heights", flush=True)
        # The model serving the last height (the first may be retired by now) on its own golden vectors.
        last = max((e for e in entries if e["activation_height"] <= heights[-1]), key=lambda e: e["activation_height"])
        common.golden_check(tested.target, os.path.join(models, last["path"]), block_height=heights[-1])
    finally:
        tested.terminate()
        reference.terminate()
    mismatches = [h for h, a, b in zip(heights, digests["sidecar"], digests[args.compare_label]) if a != b]
    served = {n: {v: versions[n].count(v) for v in sorted(set(versions[n]))} for n in names}
    stats = {n: common.summary_ms(lat[n]) | {"calls_per_s": len(lat[n]) / wall[n],
                                             "server_cpu_ms_per_call": cpu[n] / len(lat[n]) * 1e3} for n in names}
    rows = [[n, s["n"], s["calls_per_s"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["server_cpu_ms_per_call"],
             ", ".join(f"{v} {c}" for v, c in served[n].items())] for n, s in stats.items()]
    print(common.table(rows, ["sidecar", "heights", "calls/s", "p50 ms", "p99 ms", "max ms", "server CPU ms/call",
                              "answered by"]))
    ratio = stats[args.compare_label]["p50_ms"] / stats["sidecar"]["p50_ms"]
    print(f"heights {heights.start}..{heights.stop - 1}, upgrade at {activation}; "
          f"{args.compare_label} p50 / sidecar p50 = {ratio:.3f}; load average {os.getloadavg()}")
    print(f"responses differing from the {args.compare_label} run: {len(mismatches)}"
          + (f" (first at heights {mismatches[:10]})" if mismatches else ""))
    doc.update(heights=[heights.start, heights.stop - 1], activation_height=activation, stats=stats, served=served,
               mismatches=len(mismatches), first_mismatches=mismatches[:100], load_average=os.getloadavg(),
               compare_src=bool(args.compare_src))
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for n in names:
        xs = sorted(x * 1e3 for x in lat[n])
        ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=n)
    ax.set(xscale="log", xlabel="ComputeScore latency (ms, log)", ylabel="fraction of calls",
           title=f"replay of {len(reqs)} heights, c=1 — {doc['date'][:10]} {doc['commit']}")
    ax.legend()
    common.write(args.out_dir, "replay", doc, fig)
    if mismatches:
        raise SystemExit(f"REPLAY MISMATCH: {len(mismatches)} responses differ from the {args.compare_label} run")


if __name__ == "__main__":
    main()
